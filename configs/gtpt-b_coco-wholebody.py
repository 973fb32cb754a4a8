_base_ = ['./_base_/gtpt_coco-wholebody.py']

arch, embed_dims = 'b', 192
model = dict(backbone=dict(arch=arch), head=dict(in_channels=embed_dims))
# where `mim train gtpt_mmpose configs/gtpt-b_coco.py` saves stage 1
stage1_work_dir = 'work_dirs/gtpt-b_coco'

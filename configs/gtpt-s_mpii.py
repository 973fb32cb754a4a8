_base_ = ['./_base_/gtpt_mpii.py']

arch, embed_dims = 's', 192
model = dict(backbone=dict(arch=arch), head=dict(in_channels=embed_dims))

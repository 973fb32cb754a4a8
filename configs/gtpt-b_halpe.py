_base_ = ['./_base_/gtpt_halpe.py']

arch, embed_dims = 'b', 192
model = dict(backbone=dict(arch=arch), head=dict(in_channels=embed_dims))

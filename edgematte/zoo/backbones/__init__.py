"""Backbones shared by the zoo's models (MobileNetV2, MobileNetV3, ResNet_vd, HRNet), with PaddleSeg's parameter names.

Each backbone maps an image ``[N, 3, H, W]`` to a list of features at increasing strides and says its channel
counts in ``feature_channels``; the models that use one (MODNet, PP-HumanMatting, PP-Matting, RVM) take it whole.
"""

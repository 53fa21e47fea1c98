"""The official models edgematte builds: names, configs, native sizes and deploy transforms.

Each entry names the module holding the Paddle dygraph definition (imported lazily: building a model
needs paddlepaddle, listing the zoo does not).
"""

import importlib
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from ..core.errors import EdgematteError


@dataclass(frozen=True)
class ModelSpec:
    """Facts about one official model.

    ``native_hw`` is the fixed input size used when nothing else fixes it (height, width).
    ``transforms`` are PaddleSeg's ``val_dataset`` transforms, written verbatim to ``deploy.yaml``.
    """

    name: str
    config: str
    paddleseg_class: str
    module: str
    native_hw: Tuple[int, int]
    size_multiple: int
    transforms: List[dict] = field(default_factory=list)
    aliases: Tuple[str, ...] = ()
    description: str = ""
    # Max abs alpha difference a float32 artefact may show against the reference. Continuous models are
    # float-exact to ~1e-6; a model with a hard decision (argmax, clip) in its graph flips a few boundary
    # pixels on rounding noise, so its bound is looser (and said why).
    fp32_parity_bound: float = 1e-4
    # Share of pixels allowed beyond the bound when the mean stays float-exact (isolated decision flips).
    boundary_pixel_share: float = 0.0
    parity_note: str = ""
    # Whether `convert` writes an fp16 TFLite unless asked otherwise (a model whose fp32 weights do not
    # survive rounding to fp16 gets no fp16 artefact by default, and the reason is recorded).
    default_fp16: bool = True
    fp16_note: str = ""
    # One module may define several models (MODNet on three backbones): the one ``build`` is asked for.
    variant: str = ""
    # Seeded weights of a deep backbone saturate unless their BatchNorm statistics are calibrated
    # (:mod:`edgematte.zoo.bn_calibration`): the bundled sample photo they are calibrated on, at ``native_hw``
    # ("": the plain formula, for the models whose seeded outputs stay alive without it).
    seed_calibration_photo: str = ""
    # A recurrent model is calibrated on the first frame of a clip panned across that photo
    # (:func:`edgematte.zoo.bn_calibration.pan_clip`): ``(frames, pixels per frame)``; () for a still model.
    seed_calibration_clip: Tuple[int, ...] = ()

    def definition(self):
        """The module with ``build(width)`` (``build(width, variant)`` for a ``variant``) and the model class
        (needs paddle)."""
        return importlib.import_module(self.module)

    def build(self, width: float = 1.0):
        """A fresh ``paddle.nn.Layer`` of this architecture (random init, train mode)."""
        if self.variant:
            return self.definition().build(width=width, variant=self.variant)
        return self.definition().build(width=width)

    def layout(self, width: float = 1.0) -> List[Tuple[str, Tuple[int, ...], str]]:
        """``[(key, shape, dtype)]`` of the built model's state_dict, in checkpoint order."""
        return state_dict_layout(self.build(width))


def state_dict_layout(model) -> List[Tuple[str, Tuple[int, ...], str]]:
    """``[(key, shape, dtype)]`` of a ``paddle.nn.Layer``'s state_dict, in checkpoint order (dtype as
    ``"float32"``)."""
    return [(key, tuple(int(d) for d in value.shape), str(value.dtype).replace("paddle.", ""))
            for key, value in model.state_dict().items()]



def _modnet_transforms() -> List[dict]:
    """The deploy transforms of PaddleSeg's MODNet configs (``modnet/modnet-*.yml``, every backbone)."""
    return [
        {"type": "LoadImages"},
        {"type": "ResizeByShort", "short_size": 512},
        {"type": "ResizeToIntMult", "mult_int": 32},
        {"type": "Normalize"},
    ]


def _limit_short_512_transforms() -> List[dict]:
    """The deploy transforms of PaddleSeg's PP-MattingV2 and PP-Matting 512 configs."""
    return [
        {"type": "LoadImages"},
        {"type": "LimitShort", "max_short": 512},
        {"type": "ResizeToIntMult", "mult_int": 32},
        {"type": "Normalize"},
    ]


def _modnet(backbone: str, description: str) -> ModelSpec:
    """MODNet on ``backbone`` (PaddleSeg's ``modnet-<backbone>`` config): one definition, three backbones."""
    return ModelSpec(name=f"modnet_{backbone}", config=f"modnet-{backbone}", paddleseg_class="MODNet",
                     module="edgematte.zoo.modnet", variant=backbone, native_hw=(512, 512), size_multiple=32,
                     transforms=_modnet_transforms(), aliases=(f"modnet-{backbone}",), description=description,
                     seed_calibration_photo="astronaut")


# PP-Matting fuses by an argmax over three semantic classes: where two seeded class probabilities nearly tie, float
# rounding flips the class (alpha jumps by up to 1); elsewhere alpha is continuous. Measured at 512x512 (astronaut,
# seed 0; tests/test_zoo_ppmatting.py): float32 against float64 differs by 4.3e-4 where the argmax agrees, and by more
# than 8.5e-4 at 0.055 % of pixels.
PPMATTING_BOUND = 1e-3
PPMATTING_SHARE = 2e-3
PPMATTING_NOTE = (
    "the semantic/detail fusion takes an argmax: float rounding flips boundary pixels where two class probabilities "
    "nearly tie (float32 against float64 at 512x512: 0.18 % of pixels change class, 0.055 % move alpha beyond 8.5e-4, "
    "by up to 1.0; elsewhere 4.3e-4; PaddleSeg's own static export against its dygraph: 0.07 % of pixels by up to "
    "1.0): a float artefact passes when its max abs is within the bound, or when at most 0.2 % of pixels exceed it "
    "and the mean abs difference stays float-exact"
)


MODELS: Dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="ppmattingv2",
            config="ppmattingv2-stdc1-human_512",
            paddleseg_class="PPMattingV2",
            module="edgematte.zoo.ppmattingv2",
            native_hw=(512, 512),
            size_multiple=32,
            transforms=_limit_short_512_transforms(),
            aliases=("pp-mattingv2", "ppmattingv2-stdc1-human_512"),
            description="PP-MattingV2 (STDC1, 8.95 M params): real-time portrait matting at 512",
        ),
        ModelSpec(
            name="humanmatting",
            config="human_matting-resnet34_vd",
            paddleseg_class="HumanMatting",
            module="edgematte.zoo.humanmatting",
            native_hw=(2048, 2048),
            size_multiple=128,
            transforms=[
                {"type": "LoadImages"},
                {"type": "ResizeByShort", "short_size": 2048},
                {"type": "ResizeToIntMult", "mult_int": 128},
                {"type": "Normalize"},
            ],
            aliases=("pp-humanmatting", "human_matting-resnet34_vd"),
            description="PP-HumanMatting (ResNet34_vd, 63.9 M params): high-resolution portrait matting",
            fp32_parity_bound=1e-3,
            boundary_pixel_share=1e-3,
            default_fp16=False,
            fp16_note="rounding this model's (seeded) weights to fp16 alone moves alpha by 7e-3 at 256x256 and 0.31 at "
            "512x512 (ONNX Runtime with fp16-rounded weights), beyond the fp16 bound of 5e-3; ask for --fp16 to build "
            "it anyway (it is then judged against that bound)",
            parity_note="the glance/focus fusion takes an argmax: float rounding flips a few boundary pixels "
            "(PaddleSeg's own static export differs from its dygraph by 2e-4 there; at 2048x2048 Paddle's oneDNN and "
            "plain kernels disagree by 2.7e-3 on 0.04% of pixels): a float artefact passes when its max abs is within "
            "the bound, or when at most 0.1% of pixels exceed it and the mean abs difference stays below 1e-5",
        ),
        _modnet("mobilenetv2", "MODNet (MobileNetV2, 6.5 M params): light portrait matting at 512"),
        _modnet("resnet50_vd", "MODNet (ResNet50_vd, 92.2 M params): portrait matting at 512, heavy backbone"),
        _modnet("hrnet_w18", "MODNet (HRNet_W18, 10.2 M params): the most accurate MODNet, portrait matting at 512"),
        ModelSpec(
            name="rvm_mobilenetv3",
            config="rvm-mobilenetv3",
            paddleseg_class="RVM",
            module="edgematte.zoo.rvm",
            native_hw=(512, 512),  # the reference clip's size (at the config's downsample ratio 0.25)
            # Any size runs: the decoder crops its upsampled maps to the pooled frame's and the refiner resizes
            # to the frame, so video sizes such as 720x1280 (720 is no multiple of 32) convert as they are. Its
            # deploy.yaml resizes nothing. At ratio 0.25 the zoo-wide minimum 64x64 gives the encoder 16x16, r4 1x1.
            size_multiple=1,
            transforms=[
                {"type": "LoadImages", "to_rgb": True},
                {"type": "Normalize", "mean": [0, 0, 0], "std": [1, 1, 1]},
            ],
            aliases=("rvm-mobilenetv3", "rvm"),
            description="RVM (MobileNetV3-Large, 3.75 M params): recurrent video matting, states fed back per frame",
            seed_calibration_photo="astronaut",
            # the reference clip: 3 frames panning 6 px a frame; the statistics come from its first frame
            seed_calibration_clip=(3, 6),
            # No stated fp32 bound: RVM is continuous (its clips are no decisions), so the converter's own
            # float-noise stage derives the bound (4 x the reference's float32 noise over the parity clips; at
            # 512x512 the states carry 1.2e-5 on the first frame to 1.21e-4 on the third, tests/test_zoo_rvm.py).
        ),
        ModelSpec(
            name="ppmatting_hrnet_w18",
            config="ppmatting-hrnet_w18-human_512",
            paddleseg_class="PPMatting",
            module="edgematte.zoo.ppmatting",
            native_hw=(512, 512),
            size_multiple=32,
            transforms=_limit_short_512_transforms(),
            aliases=("ppmatting-hrnet_w18", "ppmatting-hrnet_w18-human_512", "pp-matting"),
            description="PP-Matting (HRNet_W18, 24.5 M params): semantic + detail branches, portrait matting at 512",
            seed_calibration_photo="astronaut",
            fp32_parity_bound=PPMATTING_BOUND,
            boundary_pixel_share=PPMATTING_SHARE,
            parity_note=PPMATTING_NOTE,
        ),
    )
}


def get_model_spec(name: str) -> ModelSpec:
    """Look a model up by name or alias (case-insensitive); unknown names list the known ones."""
    wanted = name.strip().lower()
    for spec in MODELS.values():
        if wanted == spec.name or wanted in spec.aliases:
            return spec
    raise EdgematteError(f"unknown model '{name}' (known: {', '.join(MODELS)})")

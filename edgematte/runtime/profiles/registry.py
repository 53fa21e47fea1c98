"""The profiles by name (Java twin: ``Profiles``, which knows the two Android ones).

``PROFILES`` maps each name to its class. The fixed-step profiles (android, paddleseg-android) are
shared instances. The profiles driven by deploy.yaml transforms (paddleseg, fastdeploy) are built per
model from that model's transforms and are not available without them: the runtime holds no per-model
facts (the zoo registry does, and the runtime does not import the zoo).
"""

from typing import Dict, Optional, Sequence, Type

from edgematte.core.errors import EdgematteError

from .android import AndroidProfile
from .base import Profile
from .fastdeploy import FastDeployProfile
from .paddleseg import PaddleSegProfile
from .paddleseg_android import PaddleSegAndroidProfile
from .transforms import _TransformsProfile

PROFILES: Dict[str, Type[Profile]] = {
    profile.name: profile
    for profile in (PaddleSegProfile, FastDeployProfile, AndroidProfile, PaddleSegAndroidProfile)
}
# One shared instance per fixed-step profile: they hold only constants and a normalization table.
_FIXED_STEP: Dict[str, Profile] = {
    name: cls() for name, cls in PROFILES.items() if not issubclass(cls, _TransformsProfile)
}


def profile_class(name: str) -> Type[Profile]:
    """The class of the profile called ``name``; an unknown name raises EdgematteError naming the known ones."""
    if name not in PROFILES:
        raise EdgematteError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def reads_transforms(name: str) -> bool:
    """Whether the profile ``name`` is configured by a model's deploy.yaml transforms (paddleseg, fastdeploy)."""
    return issubclass(profile_class(name), _TransformsProfile)


def get_profile(name: str, transforms: Optional[Sequence[dict]] = None) -> Profile:
    """The profile called ``name``; ``transforms`` (deploy.yaml list) configures paddleseg/fastdeploy.

    Those two need the model's transforms: a manifest's ``model.transforms``, or above the runtime the
    zoo's ``get_model_spec(name).transforms``; without them they raise EdgematteError. The fixed-step
    profiles take none (passing some raises).
    """
    cls = profile_class(name)
    if not issubclass(cls, _TransformsProfile):
        if transforms is not None:
            raise EdgematteError(f"profile {name!r} has fixed steps; deploy.yaml transforms apply only to "
                                 f"'paddleseg' and 'fastdeploy'")
        return _FIXED_STEP[name]
    if transforms is None:
        raise EdgematteError(f"profile {name!r} needs the model's deploy.yaml transforms (a manifest's "
                             f"model.transforms, or the zoo's get_model_spec(name).transforms)")
    return cls.from_transforms(transforms)


def profile_for_model(name: str, transforms: Optional[Sequence[dict]] = None) -> Profile:
    """The profile ``name`` for a model whose deploy.yaml lists ``transforms``.

    The transforms configure the profiles that read them (paddleseg, fastdeploy: without transforms
    those raise, see :func:`get_profile`); the others have fixed steps and ignore them.
    """
    reads = name in PROFILES and issubclass(PROFILES[name], _TransformsProfile)
    return get_profile(name, transforms if (transforms and reads) else None)

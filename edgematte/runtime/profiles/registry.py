"""The profiles by name (Java twin: ``Profiles``, which knows the two Android ones).

``PROFILES`` maps each name to its class. Every profile takes its normalization from the model's
deploy.yaml transforms (a manifest's ``model.transforms``):

- paddleseg, fastdeploy are built per model from the whole list (resizes and Normalize) and are not
  available without it: the runtime holds no per-model facts (the zoo registry does, and the runtime
  does not import the zoo).
- android, paddleseg-android (fixed steps) take only the Normalize step; their geometry is the app's,
  so the list's resizes are ignored. Without transforms they use mean = std = 0.5 from one shared
  instance; a list whose Normalize is 0.5/0.5 gets that instance too (the same numbers), any other
  list a new instance.
"""

from typing import Dict, Optional, Sequence, Type

from edgematte.core.errors import EdgematteError

from .android import AndroidProfile
from .base import Profile
from .fastdeploy import FastDeployProfile
from .normalization import DEFAULT_NORMALIZATION, model_normalization
from .paddleseg import PaddleSegProfile
from .paddleseg_android import PaddleSegAndroidProfile
from .transforms import _TransformsProfile

PROFILES: Dict[str, Type[Profile]] = {
    profile.name: profile
    for profile in (PaddleSegProfile, FastDeployProfile, AndroidProfile, PaddleSegAndroidProfile)
}
# One shared instance per fixed-step profile with the default normalization: they hold only constants
# and a normalization table.
_FIXED_STEP: Dict[str, Profile] = {
    name: cls() for name, cls in PROFILES.items() if not issubclass(cls, _TransformsProfile)
}


def profile_class(name: str) -> Type[Profile]:
    """The class of the profile called ``name``; an unknown name raises EdgematteError naming the known ones."""
    if name not in PROFILES:
        raise EdgematteError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def reads_transforms(name: str) -> bool:
    """Whether the profile ``name`` needs a model's deploy.yaml transforms (paddleseg, fastdeploy).

    The fixed-step profiles read only the Normalize step and have a default without transforms, so
    this is False for them.
    """
    return issubclass(profile_class(name), _TransformsProfile)


def get_profile(name: str, transforms: Optional[Sequence[dict]] = None) -> Profile:
    """The profile called ``name`` for a model whose deploy.yaml lists ``transforms``.

    paddleseg/fastdeploy need the model's transforms: a manifest's ``model.transforms``, or above the
    runtime the zoo's ``get_model_spec(name).transforms``; without them they raise EdgematteError.
    android/paddleseg-android take only the Normalize step (see
    :func:`.normalization.model_normalization`): None or an empty list keeps mean = std = 0.5, a list
    without Normalize feeds raw ``float32(v)``; resizes and other steps are ignored.
    """
    cls = profile_class(name)
    if not issubclass(cls, _TransformsProfile):
        if model_normalization(transforms) == DEFAULT_NORMALIZATION:
            return _FIXED_STEP[name]
        return cls(transforms=transforms)
    if transforms is None:
        raise EdgematteError(f"profile {name!r} needs the model's deploy.yaml transforms (a manifest's "
                             f"model.transforms, or the zoo's get_model_spec(name).transforms)")
    return cls.from_transforms(transforms)


def profile_for_model(name: str, transforms: Optional[Sequence[dict]] = None) -> Profile:
    """The profile ``name`` for a model whose deploy.yaml lists ``transforms`` (a manifest's ``model.transforms``).

    :func:`get_profile`, with an empty list taken as None (nothing declared: a model read without
    deploy.yaml records ``[]``): paddleseg/fastdeploy then raise, the fixed-step profiles keep 0.5/0.5.
    """
    return get_profile(name, transforms if transforms else None)

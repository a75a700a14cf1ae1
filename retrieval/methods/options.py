"""Types of the KD methods' options, with their ranges, read by the config schema.

A method declares its options in its ``__init__`` signature with these types and its defaults;
``options_model(cls)`` turns the signature (and those of its base classes) into a pydantic
model, so a config's ``methods.<name>`` section is checked (unknown keys, types, ranges)
before any training.
"""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

Weight = Annotated[float, Field(ge=0, description="loss weight, >= 0")]
Temperature = Annotated[float, Field(gt=0, description="temperature, > 0")]
Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Stage = Annotated[int, Field(ge=1, le=4, description="backbone stage, 1-4")]
Stages = tuple[Stage, ...]
TermKind = Literal["position", "activation", "channel"]
Terms = tuple[tuple[TermKind, Stage], ...]

NOT_OPTIONS = ("self", "student", "teacher", "task_loss", "train_labels")


class MethodOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def _signature_fields(cls) -> dict:
    fields = {}
    for klass in reversed(cls.__mro__):  # base classes first, subclasses override
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        hints = typing.get_type_hints(init, include_extras=True)
        for name, param in inspect.signature(init).parameters.items():
            if name in NOT_OPTIONS or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            default = ... if param.default is param.empty else param.default
            fields[name] = (hints.get(name, typing.Any), default)
    return fields


def options_model(cls) -> type[MethodOptions]:
    """The pydantic model of ``cls``'s options: every keyword of its ``__init__`` chain."""
    return create_model(f"{cls.__name__}Options", __base__=MethodOptions, **_signature_fields(cls))

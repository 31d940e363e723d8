"""Typed, range-checked ROS parameters.

A node lists its parameters as `ParamSpec`s; `declare_parameters` declares them with
descriptors (type, range, description) so that a wrong type or an out-of-range value in a
`--params-file` fails at start-up with a message that names the parameter.

A parameter that sets a field of a core's config dataclass is written once, in that
dataclass: the field is declared with `param(default, description, min=, max=)` and the
node builds its ParamSpec with `spec_from_field(ConfigClass, "field", name=...)` (type and
default from the field, description and range from `param`).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

_PARAM = "autonomy_stack.param"


class ParameterError(RuntimeError):
    """A parameter has a wrong type or an out-of-range value (start-up error)."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[Sequence[str]] = None
    read_only: bool = False

    def validate(self, value: Any) -> Any:
        """Check `value` against the spec; returns it (ints widened to float where the
        default is a float). Raises ParameterError naming the parameter."""
        want = type(self.default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want in (list, tuple):
            if not isinstance(value, (list, tuple)):
                raise ParameterError(f"parameter '{self.name}': expected a list, got {value!r}")
        elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ParameterError(
                f"parameter '{self.name}': expected {want.__name__}, got "
                f"{type(value).__name__} {value!r}")
        if self.min is not None and value < self.min:
            raise ParameterError(
                f"parameter '{self.name}': {value!r} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ParameterError(
                f"parameter '{self.name}': {value!r} is above the maximum {self.max}")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(
                f"parameter '{self.name}': {value!r} is not one of {list(self.choices)}")
        return value


def param(default: Any, description: str = "", *, min: Optional[float] = None,
          max: Optional[float] = None, choices: Optional[Sequence[str]] = None):
    """A dataclass field that is also a node parameter: `default` is the field's default
    (a list or dict is copied per instance), description / range / choices are kept in
    the field's metadata for `spec_from_field`.

        horizon: float = param(10.0, "s, planning horizon", min=2.0, max=20.0)
    """
    meta = {_PARAM: dict(description=description, min=min, max=max, choices=choices)}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def spec_from_field(cls: type, attr: str, name: Optional[str] = None) -> ParamSpec:
    """The ParamSpec of node parameter `name` (default: `attr`) for field `attr` of the
    dataclass `cls`: the field's default (a tuple becomes a list, the ROS array type) and
    the description / range given to `param(...)`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if attr not in fields:
        raise KeyError(f"{cls.__name__} has no field '{attr}'")
    f = fields[attr]
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        raise ValueError(f"{cls.__name__}.{attr} has no default")
    if isinstance(default, tuple):
        default = list(default)
    return ParamSpec(name or attr, default, **f.metadata.get(_PARAM, {}))


def declare_parameters(node, specs: Iterable[ParamSpec]) -> dict:
    """Declare every spec on `node` and return {name: validated value}.

    Raises ParameterError (caught by `node_runtime.run_node`, which logs it and exits 2).
    """
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange,
                                    ParameterDescriptor)
    # lazy: rclpy only on this path: the module imports without ROS
    from rclpy.exceptions import (InvalidParameterTypeException,
                                  InvalidParameterValueException)

    values = {}
    for spec in specs:
        desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        if isinstance(spec.default, float) and (spec.min is not None and spec.max is not None):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(spec.min), to_value=float(spec.max), step=0.0)]
        elif (isinstance(spec.default, int) and not isinstance(spec.default, bool)
              and spec.min is not None and spec.max is not None):
            desc.integer_range = [IntegerRange(
                from_value=int(spec.min), to_value=int(spec.max), step=0)]
        try:
            param = node.declare_parameter(spec.name, spec.default, desc)
        except InvalidParameterTypeException as exc:
            raise ParameterError(f"parameter '{spec.name}': wrong type ({exc})") from None
        except InvalidParameterValueException as exc:
            raise ParameterError(f"parameter '{spec.name}': invalid value ({exc})") from None
        values[spec.name] = spec.validate(param.value)
    return values

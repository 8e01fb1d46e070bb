"""Blueprints with the quals mixin composed, registered as ``<type>_quals`` for Mephisto's stock types."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Dict, Optional, Type

from mephisto.operations.registry import BLUEPRINTS, register_mephisto_abstraction

from mephisto_quals.compile.config import QualsArgs
from mephisto_quals.integration.mixin import QualsRequired
from mephisto_quals.integration.shared_state import QualsSharedState

if TYPE_CHECKING:
    from mephisto.abstractions.blueprint import Blueprint

__all__ = ["with_quals", "STOCK_BLUEPRINT_TYPES", "QUALS_BLUEPRINTS", "register_stock_blueprints"]

#: Mephisto's own blueprint types that get a ``_quals`` twin.
STOCK_BLUEPRINT_TYPES = ("mock", "static_task", "static_react_task", "remote_procedure", "parlai_chat")

#: Every blueprint type this package registered, name -> class.
QUALS_BLUEPRINTS: Dict[str, Type[Blueprint]] = {}


def with_quals(base: Type[Blueprint], blueprint_type: Optional[str] = None, register: bool = True) -> Type[Blueprint]:
    """Compose the quals mixin into a blueprint class, and register it with Mephisto.

    The new class is named ``<base.BLUEPRINT_TYPE>_quals`` unless ``blueprint_type`` is
    given; its args gain the ``quals`` node and its shared state the provider fields. It
    validates the ``quals`` node first, whatever the base blueprint's own checks do.
    Usage, one line: ``MyQualsBlueprint = with_quals(MyBlueprint)``.
    """
    name = blueprint_type or f"{base.BLUEPRINT_TYPE}_quals"
    if name in QUALS_BLUEPRINTS:
        return QUALS_BLUEPRINTS[name]
    args_cls = dataclasses.make_dataclass(
        f"{base.__name__}QualsArgs",
        [("_blueprint_type", str, dataclasses.field(default=name))],
        bases=(QualsArgs, base.ArgsClass),
    )
    state_cls = dataclasses.make_dataclass(
        f"{base.__name__}QualsSharedState", [], bases=(QualsSharedState, base.SharedStateClass)
    )

    class Composed(QualsRequired, base):
        ArgsClass = args_cls
        SharedStateClass = state_cls
        BLUEPRINT_TYPE = name

        @classmethod
        def assert_task_args(cls, args: Any, shared_state: Any) -> None:
            # Some stock blueprints never reach their mixins' checks (static_task calls
            # Blueprint.assert_task_args directly), so validate the quals node here first.
            QualsRequired.assert_mixin_args(args, shared_state)
            super().assert_task_args(args, shared_state)

    Composed.__name__ = Composed.__qualname__ = f"{base.__name__}WithQuals"
    Composed.__doc__ = f"{base.__name__} with mephisto-quals qualification control ({name})."
    if register:
        register_mephisto_abstraction()(Composed)
    QUALS_BLUEPRINTS[name] = Composed
    return Composed


def register_stock_blueprints() -> Dict[str, Type[Blueprint]]:
    """Register ``<type>_quals`` for each stock blueprint Mephisto has loaded."""
    for stock in STOCK_BLUEPRINT_TYPES:
        base = BLUEPRINTS.get(stock)
        if base is not None:
            with_quals(base)
    return dict(QUALS_BLUEPRINTS)


register_stock_blueprints()
# The gate is installed by the mixin when a _quals run starts (QualsRequired.init_mixin_config),
# not here: loading the plugin leaves every other run to Mephisto's own worker_is_qualified.

"""What each optimizer expects of a parameter: its contract, declared per class.

An optimizer class may expect matrices (MLX's ``Muon`` orthogonalises the
update of a 2-D parameter, and quietly runs momentum SGD on anything
smaller), treat a 3-D stack of matrices as one matrix (MLX's ``Muon``
reshapes ``(experts, out, in)`` to ``(experts, out * in)``), suit only the
hidden layers of a network (Muon again, by its authors' advice), or decay
every parameter it holds (``weight_decay > 0``). The findings of an
assignment (:mod:`multiopt_lab._src.partition.findings`) check each group's
parameters against the contract of its optimizer's class.

Contracts are looked up along the class's method resolution order: a
subclass of ``optim.Muon`` has Muon's contract unless it declares its own
with :func:`declare_contract`.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.optimizers as optim

__all__ = ["OptimizerContract", "declare_contract", "contract_of", "weight_decay_of"]


@dataclass(frozen=True)
class OptimizerContract:
    """What an optimizer class expects of each parameter it is given.

    Each field names one expectation; a group whose parameters break one
    gets a finding naming the parameters, the optimizer, what it will
    actually do with them and the fix.

    Attributes:
        min_ndim (int): Parameters with fewer dimensions break it (an
            error). Default: ``0`` (any parameter).
        below_min_ndim (str): What the optimizer actually does with such a
            parameter, completing "on them, it ...". Default: ``""``.
        flattens_stacks (bool): It treats a 3-D stack of matrices (a
            mixture of experts' ``SwitchLinear``, MLA's ``MultiLinear``) as one
            matrix, mixing them (a warning). Default: ``False``.
        stack_fix (str): The optimizer to use on stacks instead. Default: ``""``.
        hidden_layers_only (bool): Meant for hidden layers: embeddings and
            output heads belong elsewhere (a warning). Default: ``False``.
        advice (str): Where that advice comes from, for the message. Default: ``""``.
        weight_decay (str | None): The attribute holding its weight decay;
            above zero, decaying norms, biases and embeddings is reported
            (a note). Default: ``None`` (it does not decay).

    Example:
        >>> OptimizerContract(min_ndim=2).hidden_layers_only
        False
    """

    min_ndim: int = 0
    below_min_ndim: str = ""
    flattens_stacks: bool = False
    stack_fix: str = ""
    hidden_layers_only: bool = False
    advice: str = ""
    weight_decay: str | None = None

    def __post_init__(self):
        if isinstance(self.min_ndim, bool) or not isinstance(self.min_ndim, int) or self.min_ndim < 0:
            raise ValueError(f"expected min_ndim to be an int >= 0, found {self.min_ndim!r}")
        for name in ("below_min_ndim", "stack_fix", "advice"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"expected {name} to be a str (words for the message), found "
                                f"{type(getattr(self, name)).__name__} {getattr(self, name)!r}")
        for name in ("flattens_stacks", "hidden_layers_only"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"expected {name} to be True or False, found "
                                f"{type(getattr(self, name)).__name__} {getattr(self, name)!r}")
        if self.weight_decay is not None and not isinstance(self.weight_decay, str):
            raise TypeError("expected weight_decay to be the name of the attribute holding the "
                            f"optimizer's weight decay (e.g. 'weight_decay'), found {self.weight_decay!r}")


_MUON_ADVICE = (
    "Muon is for hidden layers; its authors optimise embeddings and classifier heads with AdamW "
    "(Keller Jordan's write-up \"Muon: An optimizer for hidden layers in neural networks\" and "
    "the README of github.com/KellerJordan/Muon), as does Moonshot's Moonlight code for "
    "embed_tokens and lm_head")

_MUON = OptimizerContract(
    min_ndim=2,
    below_min_ndim="runs momentum SGD on them at Muon's learning rate, without orthogonalising",
    flattens_stacks=True,
    stack_fix="multiopt_lab.recipes.StackedMuon (the same arguments), which orthogonalises "
              "each matrix of a stack alone",
    hidden_layers_only=True,
    advice=_MUON_ADVICE,
    weight_decay="weight_decay",
)
_DECAYS = OptimizerContract(weight_decay="weight_decay")

_CONTRACTS: dict[type, OptimizerContract | None] = {
    optim.Muon: _MUON,
    optim.AdamW: _DECAYS,
    optim.SGD: _DECAYS,
    optim.Lion: _DECAYS,
    optim.Adafactor: _DECAYS,
}


def declare_contract(optimizer_class: type, contract: OptimizerContract | None) -> None:
    """Declare what ``optimizer_class`` (and its subclasses) expects of a parameter.

    Args:
        optimizer_class (type): An optimizer class (a subclass of
            ``mlx.optimizers.Optimizer``).
        contract (OptimizerContract | None): Its contract; ``None`` declares
            that it expects nothing (a subclass then drops its parent's).

    Raises:
        TypeError: ``optimizer_class`` is not an optimizer class, or
            ``contract`` is not an :class:`OptimizerContract`.

    Example:
        >>> import mlx.core as mx, mlx.optimizers as optim
        >>> from multiopt_lab import OptimizerContract, assign
        >>> class MatrixSign(optim.Optimizer):  # sign of the update of a matrix
        ...     def __init__(self, learning_rate):
        ...         super().__init__()
        ...         self.learning_rate = learning_rate
        ...     def init_single(self, parameter, state):
        ...         pass
        ...     def apply_single(self, gradient, parameter, state):
        ...         return parameter - self.learning_rate * mx.sign(gradient)
        >>> declare_contract(MatrixSign, OptimizerContract(
        ...     min_ndim=2, below_min_ndim="steps them by the sign of their gradient"))
        >>> params = {"w": mx.zeros((4, 4)), "b": mx.zeros((4,))}
        >>> a = assign(params, ["True"], ["sign", "rest"], optimizers=[MatrixSign(0.1), optim.SGD(0.1)])
        >>> [(f.severity, f.paths) for f in a.diagnostics.findings if f.kind == "too_few_dims"]
        [('error', ('b',))]
    """
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, optim.Optimizer)):
        raise TypeError("expected an optimizer class (a subclass of mlx.optimizers.Optimizer), "
                        f"found {optimizer_class!r}; pass the class, not an instance")
    if contract is not None and not isinstance(contract, OptimizerContract):
        raise TypeError(f"expected an OptimizerContract or None, found {type(contract).__name__}")
    _CONTRACTS[optimizer_class] = contract


def contract_of(optimizer) -> OptimizerContract | None:
    """The contract of ``optimizer``'s class (the nearest declared along its MRO), or None.
    """
    for cls in type(optimizer).__mro__:
        if cls in _CONTRACTS:
            return _CONTRACTS[cls]
    return None


def weight_decay_of(optimizer, contract: OptimizerContract | None) -> float:
    """The weight decay ``optimizer`` applies, per its contract (0 when none or unreadable).
    """
    if contract is None or contract.weight_decay is None:
        return 0.0
    value = getattr(optimizer, contract.weight_decay, 0.0)
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # a schedule, an array being traced
        return 0.0

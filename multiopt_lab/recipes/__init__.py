"""Recipes: ready partitions for known practices, made of rule texts you can read and edit.

Each takes the model (its layers decide the rules) and returns a
:class:`~multiopt_lab.MultiOptimizer` whose groups have labels and rule
texts, so they show in the tree, the editor, TOML files and checkpoints:

* :func:`muon`: Muon on the hidden weight matrices, AdamW on the rest;
* :func:`no_weight_decay`: no weight decay on norms, biases and embeddings;
* :func:`lora_plus`: LoRA's B matrices at a higher learning rate;
* :func:`layerwise_lr_decay`: one group per block, the learning rate
  shrinking towards the input.

A recipe never builds an empty group: when one would be empty for the model
given, it says why and what to do instead.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab import recipes
    >>> from multiopt_lab.examples import TinyGPT
    >>> model = TinyGPT(16, dims=8, layers=2, heads=2)
    >>> recipes.no_weight_decay(model, optim.AdamW(1e-3, weight_decay=0.1)).assign(model).diagnostics.is_clean
    True
"""

from multiopt_lab._src.recipes.layerwise import layerwise_lr_decay
from multiopt_lab._src.recipes.lora_plus import lora_plus
from multiopt_lab._src.recipes.muon import StackedMuon, muon
from multiopt_lab._src.recipes.weight_decay import no_weight_decay

__all__ = ["muon", "no_weight_decay", "lora_plus", "layerwise_lr_decay", "StackedMuon"]

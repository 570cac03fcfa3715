"""Small building blocks shared by the model families."""

from __future__ import annotations

from torch import nn


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with at most ``groups`` groups (fewer when there are fewer channels); a clear error otherwise."""
    groups = min(groups, channels)
    if channels % groups:
        raise ValueError(f"GroupNorm needs channels divisible by norm_groups; got {channels} channels, {groups} groups")
    return nn.GroupNorm(groups, channels)

"""The netns backend: every node a network namespace on this machine (the default)."""

from lab.backends.lab import Backend
from lab.backends.netns.clean import clean
from lab.backends.netns.lab import NetnsLab

BACKEND = Backend("netns", "network namespaces on this machine", NetnsLab, NetnsLab, clean)

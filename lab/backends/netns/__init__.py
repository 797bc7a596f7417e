"""The netns backend: every node a network namespace on this machine (the default)."""

from lab.backends.lab import Backend
from lab.backends.netns.clean import clean
from lab.backends.netns.lab import NetnsLab
from lab.backends.netns.standalone import docker_host

BACKEND = Backend("netns", "network namespaces on this machine", NetnsLab, NetnsLab, clean, docker_host=docker_host)

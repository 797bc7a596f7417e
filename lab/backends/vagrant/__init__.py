"""The Vagrant backend: every node a VM (libvirt; the Vagrantfile at the repository's root)."""

from lab.backends.lab import Backend
from lab.backends.vagrant.clean import clean
from lab.backends.vagrant.commands import add_commands
from lab.backends.vagrant.lab import VagrantLab

BACKEND = Backend("vagrant", "one VM per node (vagrant-libvirt)", VagrantLab, VagrantLab, clean, add_commands)

"""roll-ascend: the Ascend NPU platform for roll-core, registered under the `roll.platforms` entry points."""

from roll_ascend.platform import NpuPlatform
from roll_ascend.runtime import RuntimeStatus, probe

__all__ = ["NpuPlatform", "RuntimeStatus", "probe"]
__version__ = "0.1.0"

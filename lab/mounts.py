"""Mounts the lab may have left in the machine's mount namespace."""

from pathlib import Path

from lab.commands import run


def under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first (the order to unmount them)."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_under(path: Path) -> None:
    for point in under(path):
        run(["umount", "--lazy", point], what=f"unmount {point}")

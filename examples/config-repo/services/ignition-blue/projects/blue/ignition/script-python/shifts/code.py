"""Shift calendar for the Blue line."""
import plant.logging

SHIFTS = ((6, 14, 1), (14, 22, 2))


def currentShift(now=None):
    """Return 1, 2 or 3 for the shift running at `now` (default: the current time)."""
    if now is None:
        now = system.date.now()
    hour = system.date.getHour24(now)
    for start, end, shift in SHIFTS:
        if start <= hour < end:
            return shift
    return 3


def logShiftChange():
    plant.logging.info("Blue line entered shift %d", currentShift())

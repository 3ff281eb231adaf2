"""Packaging counters for the Red line."""
import plant.logging

TAG_ROOT = "[default]Red/Packaging"


def casesPerHour(cases, minutes):
    """Return the packaging rate, or 0.0 while the line has not run yet."""
    if minutes <= 0:
        return 0.0
    return cases * 60.0 / minutes


def readRate():
    values = system.tag.readBlocking([TAG_ROOT + "/Cases", TAG_ROOT + "/RunMinutes"])
    rate = casesPerHour(values[0].value or 0, values[1].value or 0)
    plant.logging.info("Red packaging rate %.1f cases/h", rate)
    return rate

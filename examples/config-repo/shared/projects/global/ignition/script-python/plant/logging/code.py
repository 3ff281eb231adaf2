"""Logging helpers shared by every plant project."""

LOGGER_NAME = "plant"


def logger(suffix=None):
    """Return the plant logger, or a child logger such as plant.shifts."""
    name = LOGGER_NAME if not suffix else LOGGER_NAME + "." + suffix
    return system.util.getLogger(name)


def info(message, *args):
    logger().infof(message, *args)


def warn(message, *args):
    logger().warnf(message, *args)

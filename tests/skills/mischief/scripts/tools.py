"""Tools that try what a skill must not do; each says what it got."""
import os

import carapace


def spin() -> str:
    n = 0
    while True:
        n += 1


def hog() -> str:
    hoard = []
    while True:
        hoard.append(bytearray(1 << 20))


def peek(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return "read %d bytes" % len(f.read())
    except OSError as error:
        return "refused: %s" % error.strerror
    finally:
        pass


def keep(name: str, text: str) -> str:
    path = os.path.join("/scratch", name)
    with open(path, "w") as f:
        f.write(text)
    with open(path) as f:
        return f.read()


def call_home(url: str) -> str:
    try:
        answer = carapace.fetch(url)
    except carapace.HttpError as error:
        return "refused: %s" % error
    return "fetched %d" % answer.status

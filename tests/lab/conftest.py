from lab.fixtures import lab_hosts  # noqa: F401

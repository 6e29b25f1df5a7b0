"""Version ordering: Debian's (python-debian: epochs, tildes, revisions) and apk's."""

import pytest

from compliance.versions import BadVersion, affected, apk_compare, debian_compare, rpm_compare

# Each list is in strictly increasing order.
DEBIAN_ORDER = [
    "1.0~rc1-1",
    "1.0-1~deb12u1",
    "1.0-1",
    "1.0-1+b1",
    "1.0-1+deb12u1",
    "1.0-1+deb12u9",
    "1.0-1+deb12u10",
    "1.0.1-1",
    "2.0-1",
    "1:0.1-1",  # any epoch 1 beats every epoch 0
    "1:1.0-1",
    "2:0.0.1-1",
]
# rpm (rpmvercmp on version, then release): ~ before anything, ^ after the end only,
# numbers beat letters and compare as numbers, the epoch first.
RPM_ORDER = [
    "1.0~rc1-1.el9",
    "1.0-1.el9",
    "1.0-1.el9_1",
    "1.0-2.el9",
    "1.0-10.el9",
    "1.0^git1-1.el9",
    "1.0a-1",
    "1.0.1-1",
    "1.01.2-1",  # 01 reads as 1: above 1.0.1, below 1.2
    "1.2-1",
    "1:0.1-1",
]
APK_ORDER = [
    "1.0_alpha",
    "1.0_alpha2",
    "1.0_beta",
    "1.0_pre1",
    "1.0_rc1",
    "1.0",
    "1.0-r1",
    "1.0-r10",  # revisions compare as numbers
    "1.0_cvs",
    "1.0_git20230717",
    "1.0_p1",
    "1.0_p2-r3",
    "1.0a",
    "1.0z",
    "1.0.1",  # more components win over a letter
    "1.01.0",  # a leading zero reads as a fraction: .01 is above .0 and below .1
    "1.1",
    "1.1.1_rc1",
    "1.1.1",
    "1.2.4",
    "1.2.4_git20230717-r4",
    "1.2.4_git20230717-r5",
    "1.10",  # 10 > 2 as numbers, not as text
    "2",
]


@pytest.mark.parametrize(
    "order,compare",
    [(DEBIAN_ORDER, debian_compare), (APK_ORDER, apk_compare), (RPM_ORDER, rpm_compare)],
)
def test_total_order(order, compare):
    for i, a in enumerate(order):
        assert compare(a, a) == 0, a
        for b in order[i + 1 :]:
            assert compare(a, b) == -1, (a, b)
            assert compare(b, a) == 1, (b, a)


def test_apk_leading_zero_is_a_fraction():
    assert apk_compare("1.01", "1.1") == -1
    assert apk_compare("1.001", "1.01") == -1
    assert apk_compare("1.010", "1.01") == 0
    assert apk_compare("1.2", "1.10") == -1


def test_unreadable_versions_are_refused():
    for bad in ("", "abc", "1.0-rx", "1.0_foo", "1.0--r1"):
        with pytest.raises(BadVersion):
            apk_compare(bad, "1.0")
    with pytest.raises(BadVersion):
        debian_compare("1:", "1.0")


def test_ranges():
    cmp = debian_compare
    assert affected("1.0-1", [["0", "1.0-2", ""]], [], cmp) == (True, "1.0-2")
    assert affected("1.0-2", [["0", "1.0-2", ""]], [], cmp) == (False, "")
    assert affected("0.9-1", [["1.0-1", "1.0-2", ""]], [], cmp) == (False, "")
    assert affected("1.0-1", [["0", "", "1.0-1"]], [], cmp) == (True, "")
    assert affected("1.0-3", [["0", "1.0-2", ""], ["1.0-3", "1.0-4", ""]], [], cmp) == (
        True,
        "1.0-4",
    )
    assert affected("7", [], ["7"], cmp) == (True, "")


def test_fast_debian_keys_order_like_python_debian():
    import random

    from debian.debian_support import Version

    from compliance.versions import debian_fast_compare

    rng = random.Random(13)
    chars = "0123456789.+~abz"

    def version():
        epoch = f"{rng.randint(0, 2)}:" if rng.random() < 0.3 else ""
        upstream = str(rng.randint(0, 9)) + "".join(
            rng.choice(chars) for _ in range(rng.randint(0, 6))
        )
        revision = (
            "-" + "".join(rng.choice(chars) for _ in range(rng.randint(1, 5)))
            if rng.random() < 0.7
            else ""
        )
        return epoch + upstream + revision

    versions = []
    while len(versions) < 800:
        candidate = version()
        try:
            Version(candidate)
        except ValueError:
            continue
        versions.append(candidate)
    versions += DEBIAN_ORDER
    for _ in range(8000):
        a, b = rng.choice(versions), rng.choice(versions)
        assert debian_fast_compare(a, b) == debian_compare(a, b), (a, b)
    with pytest.raises(BadVersion):
        debian_fast_compare("1:", "1.0")

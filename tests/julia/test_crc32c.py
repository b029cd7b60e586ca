"""CRC-32C: known vectors, chaining, the pure-Python fallback against the C package, files."""
import subprocess
import sys

import crc32c as c_package
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.julia import crc32c as mod
from depotdelivery.julia.crc32c import crc32c, crc32c_file, crc32c_python


def test_check_value_and_empty():
    # the standard CRC-32C check value (julia-formats.md; RFC 3720 B.4)
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c_python(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    # RFC 3720 B.4: 32 bytes of zeros
    assert crc32c(bytes(32)) == 0x8A9136AA == crc32c_python(bytes(32))


def test_uses_the_c_package_when_installed():
    assert mod.ACCELERATED


@given(st.binary(max_size=2048), st.integers(0, 0xFFFFFFFF))
def test_python_fallback_matches_c_package(data, start):
    assert crc32c_python(data, start) == c_package.crc32c(data, start) == crc32c(data, start)


@given(st.binary(max_size=512), st.binary(max_size=512))
def test_chainable(a, b):
    assert crc32c(b, crc32c(a)) == crc32c(a + b)
    assert crc32c_python(b, crc32c_python(a)) == crc32c(a + b)


@given(st.binary(max_size=4096), st.data())
def test_file_matches_bytes(tmp_path_factory, data, draw):
    path = tmp_path_factory.mktemp("crc") / "f"
    path.write_bytes(data)
    assert crc32c_file(path) == crc32c(data)
    n = draw.draw(st.integers(0, len(data)))
    assert crc32c_file(path, length=n) == crc32c(data[:n])
    assert crc32c_file(path, 7) == crc32c(data, 7)


def test_large_file_in_chunks(tmp_path):
    data = bytes(range(256)) * 10000  # > 1 MiB chunk
    path = tmp_path / "big"
    path.write_bytes(data)
    assert crc32c_file(path) == c_package.crc32c(data)


def test_fallback_without_the_c_package():
    # a real interpreter in which `import crc32c` fails
    code = (
        "import sys; sys.modules['crc32c'] = None\n"
        "from depotdelivery.julia import crc32c as m\n"
        "assert not m.ACCELERATED\n"
        "print(m.crc32c(b'123456789'), m.crc32c(b'56789', m.crc32c(b'1234')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(0xE3069283)] * 2

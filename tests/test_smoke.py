"""The package imports and the CLI wires errors to exit codes."""
import depotdelivery
from depotdelivery.cli import main


def test_version_and_lazy_surface():
    assert depotdelivery.__version__
    assert "prepare" in dir(depotdelivery)


def test_cli_requires_a_command(capsys):
    try:
        main([])
    except SystemExit as exc:
        assert exc.code == 2
    else:  # pragma: no cover
        raise AssertionError("no command must be a usage error")

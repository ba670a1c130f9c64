import pytest

from workbench.errors import WorkbenchError
from workbench.units import format_size, parse_size, parse_size_list


def test_parse_and_format_round_trip():
    assert parse_size("4K") == 4096
    assert parse_size("64m") == 64 << 20
    assert parse_size("2MiB") == 2 << 20
    assert parse_size_list("4K,64K,2M") == [4096, 65536, 2 << 20]
    for s in ("4K", "64K", "2M", "1G", "1536M"):
        assert format_size(parse_size(s)) == s


@pytest.mark.parametrize("bad", ["", "abc", "-4K", "4X", "0M", "1.5M"])
def test_bad_sizes_name_the_value(bad):
    with pytest.raises(WorkbenchError) as e:
        parse_size(bad, "folio size")
    assert repr(bad) in str(e.value) and "\n" not in str(e.value)


def test_vm_config_differs_only_in_what_was_asked_for():
    from workbench.vm.config import VMConfig
    up = {"config": {"kernel": "patched", "nodes": [["1536M", "0"], ["1536M", "1"]], "distances": []},
          "accelerator": "tcg"}
    assert VMConfig().differences(up) == []
    assert VMConfig(accel="auto").differences(up) == []
    assert VMConfig(kernel="patched", nodes=[["1536M", "0"], ["1536M", "1"]], accel="tcg").differences(up) == []
    assert VMConfig(kernel="stock").differences(up) == ["kernel 'patched', not 'stock'"]
    assert VMConfig(accel="kvm").differences(up) == ["accelerator tcg, not kvm"]
    assert VMConfig().resolved().kernel == "stock" and VMConfig().resolved().accel == "auto"


def test_a_memory_only_node_is_written_without_cpus_or_as_none():
    from workbench.vm.config import parse_nodes
    assert parse_nodes("1536M:0,1536M:none") == parse_nodes("1536M:0,1536M") == [["1536M", "0"], ["1536M", ""]]

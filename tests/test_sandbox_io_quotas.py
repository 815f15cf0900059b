"""Storage quotas through `io` hold under every handle pattern.

Each hostile mod runs beside a well-behaved one that keeps writing its own file
and printing; the quotas must hold and the good mod must not notice.
"""

from __future__ import annotations

import os

from modhost_util import frames, make_host, mods_dir, read_log, write_mod  # noqa: F401

from host.limits import Limits

GOOD = """
n = 0
registerForEvent("onUpdate", function()
  n = n + 1
  local f = assert(io.open("notes.txt", "w"))
  f:write("frame ", n, "\\n")
  f:close()
end)
"""

SMALL = Limits(io_max_file_bytes=4000, io_max_folder_bytes=10_000, io_max_files=40)


def folder_bytes(folder) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if name.startswith("db.sqlite3") or name.endswith(".log"):
                continue
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def check_good(host, console):
    frames(host, 3)
    assert host.mods["good"].state == "loaded"
    assert (host.mods_dir / "good" / "notes.txt").read_text().startswith("frame ")


def test_several_append_handles_on_one_file_share_the_per_file_limit(make_host, mods_dir):
    """Three append handles on one file each checked their own byte count and made it 2.25x the limit."""
    write_mod(mods_dir, "good", GOOD)
    write_mod(mods_dir, "hog", """
        local hs = { io.open("a.bin", "a"), io.open("a.bin", "a"), io.open("a.bin", "a") }
        local chunk, refused = string.rep("x", 500), 0
        for round = 1, 20 do
          for _, h in ipairs(hs) do
            local ok, err = pcall(h.write, h, chunk)
            if not ok then refused = refused + 1 last = err end
          end
        end
        print("refused", refused, last)
    """)
    host, console = make_host(limits=SMALL)
    size = (mods_dir / "hog" / "a.bin").stat().st_size
    assert size <= 4000
    line = console.mod_lines("hog")[0]
    assert "per-file limit" in line and not line.startswith("refused\t0")
    check_good(host, console)


def test_truncating_with_a_second_handle_gives_back_no_bytes_that_are_still_written(make_host, mods_dir):
    """A second "w" handle truncated the file and credited its bytes back while the first kept writing
    at its old position: the folder grew past its quota."""
    write_mod(mods_dir, "good", GOOD)
    write_mod(mods_dir, "hog", """
        local refused = 0
        for i = 1, 8 do
          local name = "f" .. i .. ".bin"
          local a = io.open(name, "w")
          for k = 1, 8 do
            local b = io.open(name, "w")   -- truncates under a's feet
            b:close()
            local ok, err = pcall(a.write, a, string.rep("y", 450))
            if not ok then refused = refused + 1 last = err end
          end
          a:close()
        end
        print("refused", refused, last)
    """)
    host, console = make_host(limits=SMALL)
    assert folder_bytes(mods_dir / "hog") <= 10_000
    fio = host.mods["hog"].io
    assert fio.usage()["bytes"] == folder_bytes(mods_dir / "hog")
    line = console.mod_lines("hog")[0]
    assert "limit" in line and not line.startswith("refused\t0")
    check_good(host, console)


def test_many_empty_files_hit_the_file_count_limit(make_host, mods_dir):
    write_mod(mods_dir, "good", GOOD)
    write_mod(mods_dir, "hog", """
        local made, msg = 0, nil
        for i = 1, 200 do
          local f, err = io.open("e" .. i, "w")
          if not f then msg = err break end
          f:close()
          made = made + 1
        end
        print(made, msg)
    """)
    host, console = make_host(limits=SMALL)
    made, msg = console.mod_lines("hog")[0].split("\t", 1)
    assert int(made) < 40 and "per-mod file limit" in msg
    assert len(os.listdir(mods_dir / "hog")) <= 40 + 2      # + the log, at most
    check_good(host, console)


def test_the_quota_walk_counts_every_file_placed_beforehand(make_host, mods_dir):
    """The walk stopped counting at a fixed number of files, so a restart forgot the rest."""
    folder = write_mod(mods_dir, "hog", """
        print(io.open("one_more", "w"))
        local f = io.open("f0", "a")
        print(pcall(f.write, f, "z"))
    """)
    for i in range(60):
        (folder / f"f{i}").write_bytes(b"x" * 170)
    host, console = make_host(limits=SMALL)
    lines = console.mod_lines("hog")
    assert lines[0].startswith("nil\t") and "per-mod file limit" in lines[0]
    assert lines[1].startswith("false\t") and "per-mod folder limit" in lines[1]
    assert host.mods["hog"].io.usage()["files"] == 61          # init.lua + 60


def test_hard_links_placed_beforehand_are_never_read_or_written(make_host, mods_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    folder = write_mod(mods_dir, "hog", """
        print(io.open("link.txt"))
        print(io.open("link.txt", "w"))
        print(io.open("link.txt", "a"))
        print(io.open("link.txt", "r+"))
    """)
    os.link(secret, folder / "link.txt")
    host, console = make_host()
    lines = console.mod_lines("hog")
    assert len(lines) == 4 and all(l.startswith("nil\t") and "hard links" in l for l in lines), lines
    assert secret.read_text() == "secret"


def test_a_symlink_to_the_folder_does_not_reach_reserved_names(make_host, mods_dir):
    """`selfdir -> .` made `selfdir/db.sqlite3` a name the reserved-name check did not know."""
    write_mod(mods_dir, "good", GOOD)
    folder = write_mod(mods_dir, "hog", """
        db:exec("CREATE TABLE t (x)")
        print(io.open("selfdir/db.sqlite3", "r"))
        print(io.open("selfdir/db.sqlite3", "a"))
        print(io.open("selfdir/hog.log", "a"))
        print(io.open("selfdir/mod.toml", "w"))
        print(io.open("mod.toml", "a"))
        print(io.open("MOD.TOML", "r+"))
        print(io.open("mod.toml"):read("l"))     -- reading the manifest is fine
    """, toml='name = "hog"\n')
    os.symlink(".", folder / "selfdir")
    host, console = make_host()
    lines = console.mod_lines("hog")
    assert all(l.startswith("nil\t") and "not reachable through io" in l for l in lines[:6]), lines
    assert lines[6] == 'name = "hog"'
    assert (folder / "mod.toml").read_text() == 'name = "hog"\n'
    check_good(host, console)

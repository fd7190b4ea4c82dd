# Sourced by the bench/peer/*.sh scripts: make sure Debian's torch (with OpenBLAS) is importable by
# /usr/bin/python3. Bench scripts only; never run in CI. No pip: Debian packages only.
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "# installing python3-torch and libopenblas0-pthread with apt-get" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y python3-torch libopenblas0-pthread >&2
fi

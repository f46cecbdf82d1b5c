# Shared by bin/run and bin/test: make .venv and install the pinned requirements into it.
# Re-installs only when the requirements files changed (their hash is kept in the venv).
venv_ensure() {
  local requirements=$1
  local python=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment in .venv ..."
    "$python" -m venv .venv
  fi
  local stamp=.venv/.installed-$(basename "$requirements")
  local hash
  hash=$(cat requirements*.txt | .venv/bin/python -c 'import hashlib,sys;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
    echo "Installing the pinned dependencies from $requirements ..."
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$hash" > "$stamp"
  fi
}

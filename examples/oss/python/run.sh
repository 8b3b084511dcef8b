#!/bin/sh
# Generates the Python stubs from this repository's proto/ with grpcio-tools
# into $BUILD_DIR, then runs the demo against the runtime. Use a virtual
# environment with requirements.txt installed (see README.md); PYTHON picks
# its interpreter.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../../proto" && pwd)
build=${BUILD_DIR:-$here/build}
python=${PYTHON:-python3}

if ! "$python" -c "import grpc_tools, grpc" 2> /dev/null; then
  echo "run.sh: $python lacks grpcio-tools; install: $python -m pip install -r $here/requirements.txt" >&2
  exit 1
fi
rm -rf "$build/gen"
mkdir -p "$build/gen"
"$python" -m grpc_tools.protoc -I "$proto" \
  --python_out="$build/gen" --grpc_python_out="$build/gen" \
  "$proto/spec/proto/extension/v1/s3/oss.proto"
PYTHONPATH="$build/gen${PYTHONPATH:+:$PYTHONPATH}" exec "$python" "$here/oss_demo.py"

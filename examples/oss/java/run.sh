#!/bin/sh
# Builds the demo with plain javac over Debian's grpc-java and protobuf-java
# jars (no Maven Central needed), then runs it against the runtime.
# Stubs are generated from this repository's proto/ into $BUILD_DIR.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../../proto" && pwd)
build=${BUILD_DIR:-$here/build}
jars=${JAVA_JARS:-/usr/share/java}
plugin=${GRPC_JAVA_PLUGIN:-/usr/bin/grpc_java_plugin}

need="libgrpc-java libprotobuf-java libnetty-java libperfmark-java libgeronimo-annotation-1.3-spec-java protobuf-compiler protobuf-compiler-grpc-java-plugin default-jdk-headless"
classpath=""
for jar in protobuf grpc-api grpc-context grpc-core grpc-netty grpc-protobuf grpc-protobuf-lite grpc-stub \
  guava perfmark-api netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-codec-socks \
  netty-common netty-handler netty-handler-proxy netty-resolver netty-transport \
  geronimo-annotation-1.3-spec error_prone_annotations jsr305; do
  if [ ! -f "$jars/$jar.jar" ]; then
    echo "run.sh: $jars/$jar.jar is missing; install: apt-get install $need" >&2
    exit 1
  fi
  classpath="$classpath:$jars/$jar.jar"
done
for tool in protoc javac java "$plugin"; do
  command -v "$tool" > /dev/null || { echo "run.sh: $tool is missing; install: apt-get install $need" >&2; exit 1; }
done

rm -rf "$build/gen" "$build/classes"
mkdir -p "$build/gen" "$build/classes"
protoc -I "$proto" -I /usr/include \
  --java_out="$build/gen" \
  --plugin=protoc-gen-grpc-java="$plugin" --grpc-java_out="$build/gen" \
  "$proto/spec/proto/extension/v1/s3/oss.proto"
# shellcheck disable=SC2046
javac -nowarn -encoding UTF-8 -d "$build/classes" -cp "${classpath#:}" \
  $(find "$build/gen" "$here/src" -name '*.java')
exec java -cp "$build/classes$classpath" io.layotto.examples.oss.OssDemo

#!/usr/bin/env bash
# Generates TypeScript for every .proto under proto/ with protoc + ts-proto:
# proto/<dir>/<name>.proto -> proto/gen/<dir>/<name>.ts (imports between .proto files are
# relative to proto/, e.g. `import "onnx/onnx.proto";`).
#
# The generated code is committed, so a clean clone builds without protoc.
#   bash proto/generate.sh           regenerate proto/gen (npm run proto:gen)
#   bash proto/generate.sh --check   regenerate into a temp dir and fail if proto/gen differs
#                                    (npm run proto:check, run by CI)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

mode=generate
case "${1:-}" in
  '') ;;
  --check) mode=check ;;
  *)
    echo "usage: bash proto/generate.sh [--check]" >&2
    exit 2
    ;;
esac

if ! command -v protoc >/dev/null 2>&1; then
  echo "proto/generate.sh: protoc not found on PATH (Debian/Ubuntu: apt-get install -y protobuf-compiler)" >&2
  exit 1
fi
plugin="$repo_root/node_modules/.bin/protoc-gen-ts_proto"
if [[ ! -x "$plugin" ]]; then
  echo "proto/generate.sh: $plugin not found; run npm ci first" >&2
  exit 1
fi

# ts-proto options, one per line with the reason.
ts_proto_opts=(
  # Strict ESM under NodeNext: relative imports need the .js suffix, default imports need interop.
  importSuffix=.js
  esModuleInterop=true
  # Node only (gRPC, onnxruntime-node): bytes fields are Buffers, which grpc-js and fs take as is.
  env=node
  # int64 as number: dims, shapes, opset/IR versions, attribute ints and gRPC counters all fit in
  # 2^53, and decoding throws beyond it rather than rounding. Values that do not fit (e.g. INT64_MAX
  # as Slice's "to the end") go in TensorProto.raw_data from a BigInt64Array instead.
  forceLong=number
  # Message fields are optional keys (absence is meaningful: a TypeProto.Tensor without `shape` has
  # unknown rank); scalars and repeated fields are always present on decoded objects, so readers
  # never check for undefined. Writers build with X.create({...}), which fills the defaults.
  useOptionals=messages
  # oneofs as tagged unions ({ $case: 'dimValue', value: 3 }): setting two members cannot compile.
  oneof=unions-value
  # Enums as `as const` objects (plain JS at runtime, no TypeScript-only `enum` construct), without
  # the synthetic UNRECOGNIZED = -1 member (an unknown wire value stays the number it was).
  enumsAsLiterals=true
  unrecognizedEnum=false
  # Services (control and data plane) as @grpc/grpc-js service definitions and clients.
  outputServices=grpc-js
  # Binary wire only: configs and events are validated with zod, never proto JSON.
  outputJsonMethods=false
  # No protoc/ts-proto version header: --check must not fail merely because CI's protoc differs.
  # (ts-proto's version is pinned by package-lock.json.)
  annotateFilesWithVersion=false
)
opts_joined="$(IFS=,; echo "${ts_proto_opts[*]}")"

mapfile -t protos < <(find proto -name '*.proto' -not -path 'proto/gen/*' | LC_ALL=C sort)
if [[ ${#protos[@]} -eq 0 ]]; then
  echo "proto/generate.sh: no .proto files under proto/" >&2
  exit 1
fi

generate_into() {
  protoc \
    --plugin=protoc-gen-ts_proto="$plugin" \
    --proto_path=proto \
    --ts_proto_out="$1" \
    --ts_proto_opt="$opts_joined" \
    "${protos[@]}"
}

if [[ $mode == check ]]; then
  fresh="$(mktemp -d)"
  trap 'rm -rf "$fresh"' EXIT
  generate_into "$fresh"
  if ! differences="$(diff -ru proto/gen "$fresh" 2>&1)"; then
    echo "proto/generate.sh --check: proto/gen is stale (differs from what the .proto files generate):" >&2
    head -n 60 <<<"$differences" >&2
    echo "Run \`npm run proto:gen\` and commit proto/gen." >&2
    exit 1
  fi
  echo "proto/gen is up to date (${#protos[@]} .proto files)."
  exit 0
fi

# Generate beside proto/gen, then swap by rename: proto/gen is never half-written, and files of
# deleted .proto files disappear.
fresh="$(mktemp -d proto/.gen-tmp.XXXXXX)"
trap 'rm -rf "$fresh" proto/.gen-old' EXIT
generate_into "$fresh"
chmod 755 "$fresh"
rm -rf proto/.gen-old
if [[ -d proto/gen ]]; then mv proto/gen proto/.gen-old; fi
mv "$fresh" proto/gen
echo "generated proto/gen from ${#protos[@]} .proto files: ${protos[*]}"

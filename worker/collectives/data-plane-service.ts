import type * as grpc from '@grpc/grpc-js';
import { DataPlaneService, type PullChunkRequest } from '../../proto/gen/dataplane/dataplane.js';

// The generated service definition with pass-through response (de)serializers: a response message
// is a piece's raw little-endian float32 bytes (see dataplane.proto). Serializing returns the
// Buffer as it is (grpc-js then copies it once into its length-prefixed frame); deserializing hands
// over the bytes grpc-js already framed out, with no protobuf copy in either direction.

const passThrough = (bytes: Buffer): Buffer => bytes;

export const PULL_CHUNK = Object.freeze({
  ...DataPlaneService.pullChunk,
  responseSerialize: passThrough,
  responseDeserialize: passThrough,
});

export const RAW_DATA_PLANE_SERVICE: grpc.ServiceDefinition = Object.freeze({ pullChunk: PULL_CHUNK });

export type PullChunkCall = grpc.ServerWritableStream<PullChunkRequest, Buffer>;

"""gRPC method handlers built from ``fleet.proto``'s descriptors, with a request decoder that
never lets a malformed message reach grpc's own error path: undecodable bytes get INVALID_ARGUMENT
naming the message type (grpc alone would answer INTERNAL)."""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError

from edgefleet.proto import fleet_pb2 as pb

__all__ = ["generic_handler"]


class _Undecodable:
    def __init__(self, type_name: str, error: Exception):
        self.message = f"cannot decode {type_name}: {error}"


def _decoder(cls):
    def decode(data: bytes):
        try:
            return cls.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as e:
            return _Undecodable(cls.__name__, e)
    return decode


def _guard(behaviour, streaming: bool):
    if streaming:
        def stream(request, context):
            if isinstance(request, _Undecodable):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            yield from behaviour(request, context)
        return stream

    def unary(request, context):
        if isinstance(request, _Undecodable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return behaviour(request, context)
    return unary


def generic_handler(service_name: str, servicer) -> grpc.GenericRpcHandler:
    """All unary and server-streaming methods of ``edgefleet.v1.<service_name>`` on ``servicer``."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name[service_name].methods:
        request_cls = getattr(pb, method.input_type.name)
        response_cls = getattr(pb, method.output_type.name)
        behaviour = getattr(servicer, method.name)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(_guard(behaviour, method.server_streaming),
                                     request_deserializer=_decoder(request_cls),
                                     response_serializer=response_cls.SerializeToString)
    return grpc.method_handlers_generic_handler(f"edgefleet.v1.{service_name}", handlers)

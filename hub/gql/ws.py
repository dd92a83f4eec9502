"""GraphQL over WebSocket: graphql-transport-ws and the legacy graphql-ws, with shared execution.

The protocol rules (ARCHITECTURE.md): ``connection_init`` within a few seconds or 4408;
credentials in its payload (or the upgrade request's headers), else 4403; an operation before
the ack is 4401; a cap on operations per connection; a JWT's expiry closes the socket (4401) so
the client refreshes and resumes by sequence; an application-level ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    specified_rules,
    validate,
)
from graphql.execution import Executor, create_source_event_stream, execute_subscription_event
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.auth import AuthError, Identity, credentials_from_headers
from hub.errors import HubError
from hub.gql import limits
from hub.gql.context import Context
from hub.gql.errors import format_error
from hub.gql.shared import SharedResults, shaping_variables, variables_key
from hub.http import check_json
from hub.sockets import Session, SessionClose
from hub.wsframe import text_frame

log = logging.getLogger("tradehub.graphql.ws")

TRANSPORT_WS = "graphql-transport-ws"
MAX_CACHED_QUERY = 8 * 1024
LEGACY_WS = "graphql-ws"
MAX_VARIABLE_DEPTH = 32


@dataclass(frozen=True)
class Prepared:
    document: DocumentNode
    operation: OperationDefinitionNode
    digest: bytes
    shaping: frozenset[str]


ProtocolClose = SessionClose


class DocumentCache:
    """Parsed and validated documents, by text: clients send the same few operations."""

    def __init__(self, schema: GraphQLSchema, capacity: int = 512) -> None:
        self.schema = schema
        self.capacity = capacity
        self._docs: dict[tuple[str, str | None], Prepared | list[GraphQLError]] = {}
        self._rules = [*specified_rules, *limits.validation_rules()]

    def prepare(self, query: str, operation_name: str | None) -> Prepared | list[GraphQLError]:
        key = (query, operation_name)
        found = self._docs.get(key)
        if found is not None:
            return found
        prepared = self._prepare(query, operation_name)
        if len(query) > MAX_CACHED_QUERY:
            return prepared  # clients repeat small documents; big ones are not worth the memory
        if len(self._docs) >= self.capacity:
            self._docs.pop(next(iter(self._docs)))
        self._docs[key] = prepared
        return prepared

    def _prepare(self, query: str, operation_name: str | None) -> Prepared | list[GraphQLError]:
        try:
            document = parse(query, max_tokens=limits.MAX_TOKENS)
        except GraphQLError as error:
            return [error]
        errors = validate(self.schema, document, self._rules)
        if errors:
            return list(errors)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            operations = [
                o for o in operations if o.name is not None and o.name.value == operation_name
            ]
        if len(operations) != 1:
            what = (
                f"no operation named {operation_name!r}"
                if operation_name
                else "one operation (or an operationName)"
            )
            return [GraphQLError(f"the document must name {what}")]
        operation = operations[0]
        digest = hashlib.blake2b(f"{query}\0{operation_name}".encode(), digest_size=16).digest()
        return Prepared(document, operation, digest, shaping_variables(document, operation))


class GraphQLWebSocket:
    """The ASGI app behind ``WebSocketRoute("/graphql")``."""

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        init_timeout: float = 5.0,
        max_operations: int = 100,
        ping_interval: float = 20.0,
        send_timeout: float = 10.0,
    ) -> None:
        self.schema = schema
        self.documents = DocumentCache(schema._schema)
        self.shared = SharedResults()
        self.init_timeout = init_timeout
        self.max_operations = max_operations
        self.ping_interval = ping_interval
        self.send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        offered = scope.get("subprotocols") or []
        protocol = (
            TRANSPORT_WS if TRANSPORT_WS in offered else LEGACY_WS if LEGACY_WS in offered else None
        )
        if protocol is None:
            await websocket.close(code=4406, reason="Subprotocol not acceptable")
            return
        await websocket.accept(subprotocol=protocol)
        await _Connection(self, websocket, protocol, send, receive).run()


def _frame_text(message: Message) -> str:
    text = message.get("text")
    if text is None:
        text = (message.get("bytes") or b"").decode("utf-8", "replace")
    return str(text)


class _Connection(Session):
    def __init__(
        self,
        endpoint: GraphQLWebSocket,
        websocket: WebSocket,
        protocol: str,
        send: Send,
        receive: Receive,
    ) -> None:
        super().__init__(websocket, send, send_timeout=endpoint.send_timeout, receive=receive)
        self.endpoint = endpoint
        self.legacy = protocol == LEGACY_WS
        self.acknowledged = False
        self.operations = self.children  # running operations by id

    async def handle(self, message: Message) -> None:
        await self._handle(_frame_text(message))

    async def handshake(self) -> bool:
        try:
            async with asyncio.timeout(self.endpoint.init_timeout):
                message = await self.websocket.receive()
        except TimeoutError:
            raise ProtocolClose(4408, "Connection initialisation timeout") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        frame = self._decode(_frame_text(message))
        if frame.get("type") != "connection_init":
            if frame.get("type") in ("subscribe", "start"):
                raise ProtocolClose(4401, "Unauthorized")
            raise ProtocolClose(4400, "Expected connection_init")
        payload = frame.get("payload") or {}
        if not isinstance(payload, dict):
            raise ProtocolClose(4400, "connection_init payload must be an object")
        self.identity = await self._authenticate(payload)
        if self.identity is None:
            if self.legacy:
                await self.send_json(
                    {"type": "connection_error", "payload": {"message": "Forbidden"}}
                )
            raise ProtocolClose(4403, "Forbidden")
        self.acknowledged = True
        await self.send_json({"type": "connection_ack"})
        if self.legacy:
            await self.send_json({"type": "ka"})
        self.spawn(self._ping(), name="graphql-ping")
        return True

    async def credential_ended(self, code: int, reason: str) -> None:
        if self.legacy:
            await self.send_json({"type": "connection_error", "payload": {"message": reason}})
        await self.close(code, reason)

    async def _authenticate(self, payload: dict[str, Any]) -> Identity | None:
        headers = {str(k).lower(): str(v) for k, v in payload.items() if isinstance(v, str)}
        if "token" in headers and "authorization" not in headers:
            headers["authorization"] = f"Bearer {headers['token']}"
        token = credentials_from_headers(headers)
        if token is None:
            identity: Identity | None = getattr(self.state, "identity", None)
            return identity if identity is not None and not identity.expired() else None
        try:
            identity = await self.state.auth.authenticate(token)
        except AuthError:
            return None
        return None if identity.expired() else identity

    async def _ping(self) -> None:
        message = {"type": "ka"} if self.legacy else {"type": "ping"}
        while not self.closed:
            await asyncio.sleep(self.endpoint.ping_interval)
            await self.send_json(message)

    def _decode(self, text: str) -> dict[str, Any]:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ProtocolClose(4400, "Invalid message: not JSON") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise ProtocolClose(4400, "Invalid message: expected an object with a type")
        return frame

    async def _handle(self, text: str) -> None:
        frame = self._decode(text)
        kind = frame["type"]
        if kind == "connection_init":
            raise ProtocolClose(4429, "Too many initialisation requests")
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "pong":
            return
        elif kind in ("subscribe", "start"):
            await self._start(frame)
        elif kind in ("complete", "stop"):
            task = self.operations.pop(str(frame.get("id")), None)
            if task is not None:
                task.cancel()
        elif kind == "connection_terminate" and self.legacy:
            raise ProtocolClose(1000, "terminated")
        else:
            raise ProtocolClose(4400, f"Invalid message type {kind!r}")

    async def _start(self, frame: dict[str, Any]) -> None:
        op_id = frame.get("id")
        payload = frame.get("payload")
        if not isinstance(op_id, str) or not op_id or not isinstance(payload, dict):
            raise ProtocolClose(4400, "subscribe needs an id and a payload")
        if op_id in self.operations:
            raise ProtocolClose(4409, f"Subscriber for {op_id} already exists")
        if len(self.operations) >= self.endpoint.max_operations:
            await self._error(
                op_id,
                [
                    GraphQLError(
                        f"too many operations on this connection (at most {self.endpoint.max_operations})",
                        extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
                    )
                ],
            )
            return
        self.start_child(op_id, self._operation(op_id, payload), name=f"graphql-op-{op_id}")

    # -- operations -------------------------------------------------------------------

    def _context(self) -> Context:
        return Context(request=self.websocket, state=self.state, identity=self.identity)

    async def _error(self, op_id: str, errors: list[GraphQLError]) -> None:
        formatted = [format_error(e) for e in errors]
        if self.legacy:
            await self.send_json({"type": "error", "id": op_id, "payload": formatted[0]})
        else:
            await self.send_json({"type": "error", "id": op_id, "payload": formatted})

    def _next_prefix(self, op_id: str) -> bytes:
        kind = b"data" if self.legacy else b"next"
        return b'{"id":' + orjson.dumps(op_id) + b',"type":"' + kind + b'","payload":'

    async def _complete(self, op_id: str) -> None:
        await self.send_json({"type": "complete", "id": op_id})

    async def _operation(self, op_id: str, payload: dict[str, Any]) -> None:
        query = payload.get("query")
        variables = payload.get("variables") or None
        operation_name = payload.get("operationName") or None
        if not isinstance(query, str) or (
            variables is not None and not isinstance(variables, dict)
        ):
            await self._error(
                op_id, [GraphQLError("payload needs a query string and object variables")]
            )
            return
        try:
            check_json(variables, "variables", max_depth=MAX_VARIABLE_DEPTH)
        except HubError as exc:
            await self._error(
                op_id, [GraphQLError(exc.message, extensions={"code": "BAD_REQUEST"})]
            )
            return
        prepared = self.endpoint.documents.prepare(query, operation_name)
        if isinstance(prepared, list):
            await self._error(op_id, prepared)
            return
        context = self._context()
        if prepared.operation.operation is not OperationType.SUBSCRIPTION:
            result = await self.endpoint.schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
            )
            body: dict[str, Any] = {"data": result.data}
            if result.errors:
                body["errors"] = [format_error(e) for e in result.errors]
            await self.send_payload(self._next_prefix(op_id) + orjson.dumps(body) + b"}")
            await self._complete(op_id)
            return
        await self._subscription(op_id, prepared, variables, context)

    async def _subscription(
        self, op_id: str, prepared: Prepared, variables: dict[str, Any] | None, context: Context
    ) -> None:
        executor = Executor.build(
            self.endpoint.schema._schema,
            prepared.document,
            None,
            context,
            variables,
            prepared.operation.name.value if prepared.operation.name else None,
        )
        if isinstance(executor, list):
            await self._error(op_id, executor)
            return
        stream = create_source_event_stream(executor)
        if inspect.isawaitable(stream):
            stream = await stream
        if isinstance(stream, ExecutionResult):
            await self._error(op_id, list(stream.errors or []))
            return
        assert self.identity is not None
        group = (
            prepared.digest,
            variables_key(variables, prepared.shaping),
            self.identity.role.value,
        )
        prefix = self._next_prefix(op_id)
        shared = self.endpoint.shared
        outbox = self.outbox
        write_now = outbox.write_now
        iterator = stream.__aiter__()
        try:
            async for item in iterator:
                event_key = getattr(item, "_th_event_key", None)
                key = (event_key, group) if event_key is not None else None
                payload = shared.get(key) if key is not None else None
                if payload is None:
                    result = execute_subscription_event(executor.build_per_event_executor(item))
                    if inspect.isawaitable(result):
                        result = await result
                    body: dict[str, Any] = {"data": result.data}
                    if result.errors:
                        body["errors"] = [format_error(e) for e in result.errors]
                    payload = orjson.dumps(body)
                    if key is not None:
                        shared.put(key, payload)
                message = prefix + payload + b"}"
                if not write_now(text_frame(message)):
                    await outbox.send_payload(message)
                if outbox.closed:
                    return
        except asyncio.CancelledError:
            raise
        except GraphQLError as error:
            await self._error(op_id, [error])
            return
        except Exception as exc:
            failure = GraphQLError(str(exc), original_error=exc)
            if not isinstance(getattr(exc, "status_code", None), int):
                log.exception("subscription failed", extra={"operation": op_id})
                failure = GraphQLError("internal error", original_error=None)
            await self._error(op_id, [failure])
            return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await self._complete(op_id)

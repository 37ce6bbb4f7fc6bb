"""The wire protocol shared by client, agent and workers: versioned MessagePack messages."""

from scalems_like.protocol.messages import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    TASK_KEYS,
    UPDATE_KEYS,
    AgentStopping,
    CancelTasks,
    Heartbeat,
    Hello,
    Message,
    RunTasks,
    Shutdown,
    SubmitTasks,
    TaskUpdates,
    WorkerHello,
    decode,
    encode,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "TASK_KEYS",
    "UPDATE_KEYS",
    "AgentStopping",
    "CancelTasks",
    "Heartbeat",
    "Hello",
    "Message",
    "RunTasks",
    "Shutdown",
    "SubmitTasks",
    "TaskUpdates",
    "WorkerHello",
    "decode",
    "encode",
]

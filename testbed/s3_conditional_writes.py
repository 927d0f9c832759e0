"""S3's conditional writes atomic, as AWS makes them: of two `PutObject`s of one key with
`If-None-Match: *` (or `If-Match`) at the same time, exactly one succeeds and the other answers
412 Precondition Failed.

moto checks the precondition and then writes, without a lock between the two; the emulator serves
requests on threads, so two concurrent writers could both pass the check and both "create" the key.
telegram-notify's delivery claims (functions/telegram-notify/src/ledger.rs) rest on exactly that
race being decided once, and tests/tests/telegram_notify.rs runs two invocations into it at once.
Here a conditional PUT holds one lock from its check to its write; unconditional PUTs are left
alone (they overwrite, in AWS too).
"""

import threading

_lock = threading.Lock()


def install() -> None:
    from moto.s3.responses import S3Response

    original = S3Response.put_object

    def put_object(self):  # noqa: ANN001, ANN202
        if self.headers.get("If-None-Match") or self.headers.get("If-Match"):
            with _lock:
                return original(self)
        return original(self)

    S3Response.put_object = put_object

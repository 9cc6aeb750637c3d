"""The background sync: enrollment, uploads of the journal, packages, heartbeats.

    enroll (once)  ──► device.key, enrollment.cbor, the first config package
    SyncService.run ─► uploader    journal ──batches──► POST /v1/batches ──ack──► journal
                     ├ downloader  GET /v1/packages/{kind}?have=N ──► Store.apply_package
                     └ heartbeat   POST /v1/heartbeat

Every store call runs on the runtime's store thread, in turn with the taps, and every
request is signed by the device key (docs/protocol.md, sections 7 and 8). Nothing here is
on the tap path: a validator decides taps offline whether the server answers or not.
"""

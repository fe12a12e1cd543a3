"""The serving core: request policy, access and limits, relay, producer, serving a stream."""

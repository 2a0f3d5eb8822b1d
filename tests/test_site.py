"""The test site's wiring to the real services other parts of fastmon build on."""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def test_the_channel_layer_carries_a_group_message_over_redis(redis_url: str) -> None:
    layer = get_channel_layer()
    group = f"fastmon-test-{uuid.uuid4().hex}"

    async def round_trip() -> dict:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "tf.sample", "tf_filename": "a_tf_001.tf"})
        message = await layer.receive(channel)
        await layer.group_discard(group, channel)
        return message

    assert async_to_sync(round_trip)() == {"type": "tf.sample", "tf_filename": "a_tf_001.tf"}
    assert type(layer).__module__.startswith("channels_redis")

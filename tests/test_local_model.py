"""The embedded model, for real: SmolLM2 through llama.cpp, reached as a litellm provider."""

import asyncio

import litellm

from workbench.gateway.client import Gateway
from workbench.gateway.config import ModelConfig
from workbench.gateway.local_model import register_with_litellm, weights_path

MESSAGES = [{"role": "user", "content": "Is this review positive or negative? "
             "'I love this product'. Answer with one word."}]


def test_the_weights_ship_in_a_registry_package():
    path = weights_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_litellm_calls_it_like_any_provider():
    register_with_litellm()
    response = litellm.completion(model="local/smollm2", messages=MESSAGES, max_tokens=12,
                                  temperature=0)
    text = response.choices[0].message.content
    assert "positive" in text.lower()
    assert response.usage.prompt_tokens > 10 and 0 < response.usage.completion_tokens <= 12
    assert litellm.completion_cost(completion_response=response) == 0.0


def test_concurrent_async_calls_through_the_gateway():
    model = ModelConfig(model="local/smollm2", params={"temperature": 0, "max_tokens": 6})

    async def both():
        gateway = Gateway()
        return await asyncio.gather(*(gateway.complete(model, MESSAGES, repeat=i)
                                      for i in range(2)))

    first, second = asyncio.run(both())
    assert first.text == second.text  # temperature 0: the same answer twice
    assert first.cost == 0.0 and first.completion_tokens <= 6

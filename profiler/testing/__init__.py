"""Test utilities shipped with ctxprof (a local server that answers like the OpenAI and Anthropic APIs),
so recording can be exercised offline with the real SDKs."""

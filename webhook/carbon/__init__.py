"""Carbon-intensity data: providers behind one Protocol, and the forecast chain decisions read.

- ``base``: the ``Provider`` protocol, ``IntensityData`` (a provider's answer) and the
  ``ProviderError`` family; ``http``: the one resilient HTTP client (the only httpx user).
- One module per provider (``electricitymaps``, ``watttime``, ``ukci``, ``carbonaware``,
  ``replay``), each registered in ``registry`` (one line each).
- ``source``: ``ForecastSource``, the chain provider -> stale cache -> history -> none, which
  turns provider answers into the one forecast type decisions read,
  ``webhook.core.forecast.ForecastResult``; ``refresher`` keeps it warm off the request path.
- ``cache`` (TTL, stale-while-error), ``zones`` (cloud region -> grid zone), ``config`` (the
  provider layer's settings section).

Importing this package imports none of them: import the module you need.
"""

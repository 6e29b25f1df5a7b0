"""The verbs of runtime.api.Runtime, one module per concern, mixed into that one class.

They only use what Runtime provides (store, config, cgroups, networks, images, _observe);
none imports runtime.api, so imports point one way: api -> verbs -> container.
"""

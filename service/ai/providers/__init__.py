"""Language-model providers. Each module here defines one LanguageModel subclass with a `name`;
importing this package registers them all, so adding a provider is adding one file."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

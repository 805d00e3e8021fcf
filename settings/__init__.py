"""Layer 1, the settings: the typed model of one stack, its rules, and the reading of its configuration.

`model` is what every other layer receives: frozen dataclasses that check themselves when built, so
settings made in code and settings read from `Pulumi.<stack>.yaml` obey the same rules. `parse` turns
the raw config objects into the model (shapes, types, defaults, unknown keys); `stack` reads them from
Pulumi's configuration, the one place config is read. `operator_file` and `operator_manifest` read and
write IstioOperator files. Imports: the standard library, PyYAML and (in `stack` only) pulumi; nothing
else of this project.
"""

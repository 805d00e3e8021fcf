"""Layer 1, the settings: the typed model of one stack, its rules, and the reading of its configuration.

`model` is what every other layer receives: frozen dataclasses that check themselves when built, so
settings made in code and settings read from `Pulumi.<stack>.yaml` obey the same rules, which `rules`
(value rules, the error format), `istio_releases` (Istio's release rules) and `istio_keys` (the keys
Istio reads) hold. `parse` turns the raw config objects into the model (shapes, types, defaults,
unknown keys); `stack` reads them from Pulumi's configuration, the one place config is read, or from
a committed stack file; `yaml_file` reads YAML as the Pulumi CLI does. `operator_file` reads and
writes IstioOperator files. Imports: the standard library, PyYAML and (in `stack` only) pulumi;
nothing else of this project.
"""

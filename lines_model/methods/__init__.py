"""Distillation methods, one module (or small package) each; `methods.registry` lists them.

A method declares its name, params section, training entry point, the generators it yields and how
each loads from its output folder, its display label and the differences the evaluation reports for
it (`base.Method`). The evaluation, the seed comparison, the results view, the figures, the sample
command and the params checks iterate the registry; no module outside this package names a method.
Nothing is imported here, so a stage that trains one method depends on that method's code alone.
"""

"""mkrefs: config, inputs, grouping, plans and runs of whole campaigns."""

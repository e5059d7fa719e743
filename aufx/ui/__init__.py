"""The Gradio app: one module per tab, assembled by app_builder.build_app (see app.py)."""

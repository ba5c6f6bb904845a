"""The Textual dashboard (`tmuxtrain ui`). Only this package imports Textual, so every other
command starts without it; `tmuxtrain.ui.app.run_ui(client)` is the entry point."""

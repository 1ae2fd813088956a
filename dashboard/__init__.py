"""The arenatree Streamlit dashboard: ``app.py`` (navigation) + one script per page."""

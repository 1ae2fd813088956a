"""arenatree dashboard entry point: ``streamlit run dashboard/app.py``.

This file is the frame around every page: page config, the sidebar and the navigation.
A new page is one script in ``dashboard/views/`` plus one ``st.Page`` line in :data:`PAGES`.
"""

from __future__ import annotations

import streamlit as st

from dashboard import widgets

st.set_page_config(
    page_title="arenatree",
    page_icon=":material/account_tree:",
    layout="wide",
)

# Sections of the navigation menu -> their pages, in menu order.
PAGES: dict[str, list[st.Page]] = {
    "Data": [
        st.Page(
            "views/overview.py",
            title="Overview",
            icon=":material/dashboard:",
            url_path="overview",
            default=True,
        ),
    ],
    "Explore": [
        st.Page(
            "views/leaderboard.py",
            title="Leaderboard",
            icon=":material/leaderboard:",
            url_path="leaderboard",
        ),
        st.Page(
            "views/tree.py",
            title="Capability tree",
            icon=":material/account_tree:",
            url_path="tree",
        ),
        st.Page(
            "views/weaknesses.py",
            title="Weaknesses",
            icon=":material/trending_down:",
            url_path="weaknesses",
        ),
        st.Page(
            "views/compare.py",
            title="Model vs model",
            icon=":material/compare_arrows:",
            url_path="compare",
        ),
    ],
    "Audit": [
        st.Page(
            "views/audit.py",
            title="Voter audit",
            icon=":material/policy:",
            url_path="audit",
        ),
    ],
    "Share": [
        st.Page("views/reports.py", title="Reports", icon=":material/description:", url_path="reports"),
    ],
}

page = st.navigation(PAGES)
widgets.sidebar_database_info()
page.run()

"""The built-in agent: reviews a folder of documents and reports on it, live, through the SDK.

The review itself is plain Python with no network (:mod:`~taskline.agent.files`,
:mod:`~taskline.agent.analysis`, :mod:`~taskline.agent.review`,
:mod:`~taskline.agent.report`); :mod:`~taskline.agent.runner` runs it as an agent on a
task. This package imports only :mod:`taskline.sdk` and :mod:`taskline.domain`.
"""

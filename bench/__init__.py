"""Benchmark harness for ftpd/ftpc: `python -m bench` (full) or `python -m bench --quick`.

It measures, in one run on 127.0.0.1, the ceiling (raw TCP with md5 on both ends), ftpd/ftpc
through `ftpc.Client` and the `ftpc` command, and FTP peers (pyftpdlib, vsftpd when installed)
driven by `ftplib`, then prints a table with pass/fail targets, writes JSON and a bar chart.
"""

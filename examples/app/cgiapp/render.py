"""HTML rendering with escaping."""
from html import escape


def table(headers, rows):
    head = "".join("<th>%s</th>" % escape(str(h)) for h in headers)
    body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % escape(str(c)) for c in row) for row in rows)
    return "<table><tr>%s</tr>%s</table>" % (head, body)


def html_page(title, body):
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>"
            "<body><h1>%s</h1>\n%s\n</body></html>\n" % (escape(title), escape(title), body))

"""Reply text shared by the Discord cogs and the console, so both say the same thing.

Text uses Discord's Markdown; :func:`plain` turns it into terminal text for the console.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import discord.utils

from bot.nights import NightView, WatchedPage
from bot.onboarding import QUICKRATE_ANSWERS, ImportDecision, ImportResult
from bot.results import (
    DismissedMovie,
    RateResult,
    RatingsPage,
    Recommendations,
    RetrainResult,
    ServerStatsView,
    SimilarMovies,
    UnrateResult,
)
from bot.stars import format_number, stars
from recommender.catalog import Movie

HELP_COMMANDS = (
    ("/rate <title> <rating>", "Rate a movie from 0.5 to 5 stars (half stars allowed)."),
    ("/unrate <title>", "Remove one of your ratings."),
    (
        "/recommend [count] [genre] [discover]",
        "Personal picks (1-25, default 10), optionally one genre; discover: fewer blockbusters.",
    ),
    ("/similar <title>", "Movies closest to one movie."),
    ("/movienight [count] [genre]", "Picks for everyone in your voice channel, and a vote."),
    ("/watched", "This server's watched list (admins: /watched add or remove)."),
    ("/quickrate", "Rate a few well-chosen films, one at a time, to get good picks fast."),
    ("/import file", "Bring in your Letterboxd or IMDb ratings (CSV, or Letterboxd's zip)."),
    ("/import undo", "Put your ratings back as they were before your last import."),
    ("/myratings", "See your ratings (only you can see them)."),
    ("/export", "Download your ratings as a CSV file."),
    ("/forgetme", "Delete all your ratings, after a confirmation."),
    ("/stats", "This server's numbers: members who rated, most and best rated films."),
    ("/retrain", "Admins: refit the model on everyone's latest ratings now."),
    ("/help", "Show this list."),
)


def movie_name(movie: Movie) -> str:
    """Return the movie's label in bold, Markdown-escaped."""
    return f"**{discord.utils.escape_markdown(movie.label)}**"


def rating_text(rating: float) -> str:
    """Return ``★★★★½ (4.5)``."""
    return f"{stars(rating)} ({format_number(rating)})"


def rated(result: RateResult) -> str:
    """Return the confirmation of a rating."""
    text = f"Rated {movie_name(result.movie)} {rating_text(result.rating)}."
    if result.previous is not None and result.previous != result.rating:
        text += f" Your previous rating was {rating_text(result.previous)}."
    elif result.previous is not None:
        text += " (Same as before.)"
    return text


def unrated(result: UnrateResult) -> str:
    """Return the confirmation of a removed rating."""
    return (
        f"Removed your rating of {movie_name(result.movie)} (it was {rating_text(result.removed)})."
    )


def links(movie: Movie) -> str:
    """Return IMDb and TMDb links as Markdown, where MovieLens has them."""
    parts = []
    if movie.imdb_url:
        parts.append(f"[IMDb]({movie.imdb_url})")
    if movie.tmdb_url:
        parts.append(f"[TMDb]({movie.tmdb_url})")
    return " · ".join(parts)


def pick_line(position: int, movie: Movie, because: tuple[Movie, ...] = ()) -> str:
    """Return one numbered line of a recommendation list, with its reason if there is one."""
    details = [", ".join(movie.genres)] if movie.genres else []
    link_text = links(movie)
    if link_text:
        details.append(link_text)
    suffix = f" — {' · '.join(details)}" if details else ""
    reason = ""
    if because:
        names = " and ".join(discord.utils.escape_markdown(m.label) for m in because)
        reason = f"\n   _because you rated {names}_"
    return f"{position}. {movie_name(movie)}{suffix}{reason}"


def similar_title(result: SimilarMovies) -> str:
    """Return the heading of a /similar list."""
    return f"Movies like {result.movie.label}"


def similar_lines(result: SimilarMovies) -> list[str]:
    """Return the numbered lines of a /similar list (or why it is empty)."""
    if not result.picks:
        return [f"I know too little about {movie_name(result.movie)} to find films like it."]
    return [pick_line(i, p.movie) for i, p in enumerate(result.picks, 1)]


def dismissed(movie: Movie, undo: str = "Undo it from /myratings → Not interested.") -> str:
    """Return the confirmation of "Not interested"."""
    return f"Hidden {movie_name(movie)}: it won't be recommended to you again. {undo}"


def undismissed(movie: Movie) -> str:
    """Return the confirmation of undoing "Not interested"."""
    return f"{movie_name(movie)} can be recommended to you again."


def dismissed_lines(items: tuple[DismissedMovie, ...]) -> list[str]:
    """Return a member's "Not interested" films as numbered lines."""
    if not items:
        return ["Nothing hidden. Films you mark “Not interested” under /recommend show up here."]
    return [f"{i}. {movie_name(item.movie)}" for i, item in enumerate(items, 1)]


def picks_title(picks: Recommendations) -> str:
    """Return the heading of a recommendation list."""
    genre = f" {picks.genre}" if picks.genre else ""
    if picks.personalized:
        beaten = ", off the beaten path" if picks.discover else ""
        return f"Your top {len(picks.picks)}{genre} picks{beaten}"
    return f"Popular{genre} picks"


def picks_note(picks: Recommendations) -> str:
    """Return what the list is based on, and what to do for better picks."""
    if picks.model_missing:
        return (
            "The recommendation model isn't available right now (its last fit did not finish; "
            "an admin can check the bot's log and run /retrain), so these are popular picks."
        )
    if picks.warming_up:
        return (
            "The recommendation model is warming up, so these are popular picks for now. "
            "Your ratings are saved and will count as soon as it's ready."
        )
    if not picks.personalized:
        return "You haven't rated anything yet: rate a few films with /rate to get personal picks."
    plural = "rating" if picks.based_on == 1 else "ratings"
    note = f"Based on your {picks.based_on} {plural}."
    if picks.based_on < 3:
        note += " Rate a few more films for sharper picks."
    return note


def picks_lines(picks: Recommendations) -> list[str]:
    """Return the numbered lines of a recommendation list (or why it is empty)."""
    if not picks.picks:
        return ["I found nothing to recommend with that filter. Try another genre."]
    return [pick_line(i, p.movie, p.because) for i, p in enumerate(picks.picks, 1)]


def ratings_title(page: RatingsPage) -> str:
    """Return the heading of a ratings page."""
    return f"Your ratings ({page.total})"


def ratings_lines(page: RatingsPage) -> list[str]:
    """Return the lines of one page of ratings."""
    if page.total == 0:
        return ["You haven't rated any movies yet. Try /rate."]
    return [f"{rating_text(item.rating)} {movie_name(item.movie)}" for item in page.items]


def ratings_footer(page: RatingsPage) -> str:
    """Return ``Page 1 of 3``."""
    return f"Page {page.page + 1} of {page.pages}"


def retrained(result: RetrainResult) -> str:
    """Return the report of a finished refit, with its quality on held-out users if measured."""
    text = (
        f"Retrained in {result.seconds:.1f} s on {result.n_ratings:,} ratings "
        f"({result.n_chat_ratings:,} from {result.n_chat_users:,} members here) "
        f"over {result.n_movies:,} movies. The new model is live."
    )
    quality = result.quality
    if quality.get("users"):
        text += (
            f" Quality: NDCG@10 {quality['ndcg_model']:.3f} against {quality['ndcg_popular']:.3f} "
            f"for popular picks, on {int(quality['users'])} held-out MovieLens users "
            "with 5 ratings each."
        )
    return text + " " + model_settings(result.params, result.tuning)


def model_settings(params: dict[str, Any], tuning: dict[str, Any]) -> str:
    """Return the model's settings, and how they were chosen when tuned."""
    if not params:
        return ""
    text = (
        f"Model: {params.get('n_components')} factors, alpha {params.get('alpha'):g}, "
        f"{params.get('max_iter')} iterations, blend below {params.get('blend_below')} ratings"
    )
    if params.get("fold_in_reg", 1.0) != 1.0:
        text += f", fold-in regularization x{params['fold_in_reg']:g}"
    if not tuning:
        return text + " (as set)."
    score = tuning.get("score") or {}
    sample = tuning.get("ratings", 0)
    return text + (
        f" (self-tuned on {tuning.get('new_members', 0):,} new and "
        f"{tuning.get('warm_members', 0):,} warm held-out MovieLens members"
        f"{f' of a {sample:,}-rating sample' if sample else ''}: score "
        f"{score.get('score', 0):.3f} ± {score.get('score_se', 0):.3f}, new-member NDCG@10 "
        f"{score.get('new_member', 0):.3f}, warm {score.get('warm_member', 0):.3f}; "
        f"tuning took {tuning.get('seconds', 0):.0f} s when it ran)."
    )


def candidates_lines(candidates: tuple[Movie, ...]) -> list[str]:
    """Return a numbered list of movies to choose from."""
    return [f"{i}. {movie_name(m)}" for i, m in enumerate(candidates, 1)]


def help_lines() -> list[str]:
    """Return the command list."""
    return [f"`{usage}` — {text}" for usage, text in HELP_COMMANDS]


def forgot(count: int) -> str:
    """Return the confirmation of /forgetme."""
    if count == 0:
        return "You had no ratings, so there was nothing to delete."
    return (
        f"Deleted all {count} of your ratings. They no longer shape your picks, and the next "
        "retrain leaves them out of the model."
    )


_TIMESTAMP = re.compile(r"<t:(\d{1,12}):([a-zA-Z])>")


def _local_time(match: re.Match[str]) -> str:
    moment = dt.datetime.fromtimestamp(int(match.group(1)))
    if match.group(2) == "d":
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M")


_ITALIC = re.compile(r"(?<![\\\w])_(\S(?:.*?\S)?)(?<!\\)_(?!\w)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def plain(text: str) -> str:
    """Return Markdown reply text as terminal text: links spelled out, no bold or escapes."""
    text = _LINK.sub(r"\1 <\2>", text)
    text = text.replace("**", "").replace("`", "")
    text = _ITALIC.sub(r"\1", text)
    text = _TIMESTAMP.sub(_local_time, text)
    return re.sub(r"\\([^\sA-Za-z0-9])", r"\1", text)  # every Markdown escape: \* \- \# \\ ...


def plural(count: int, word: str) -> str:
    """Return ``1 rating`` or ``3 ratings``."""
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def stats_lines(stats: ServerStatsView) -> list[str]:
    """Return a server's numbers as lines."""
    if stats.ratings == 0:
        return ["Nobody here has rated a movie yet. Be the first: /rate"]
    lines = [f"{plural(stats.members, 'member')} rated {plural(stats.ratings, 'movie')} here."]
    minimum = stats.min_members
    if stats.members < minimum:
        lines.append(
            f"Film lists appear once {minimum} members have rated, so nobody's own ratings are "
            "shown to the channel."
        )
        return lines
    if stats.most_rated:
        lines.append("")
        lines.append(f"**Most rated** (by at least {minimum} members)")
        lines += [
            f"{i}. {movie_name(m)} — {plural(n, 'rating')}, mean {mean:.1f}"
            for i, (m, n, mean) in enumerate(stats.most_rated, 1)
        ]
    lines.append("")
    lines.append(f"**Best rated** (at least {minimum} ratings)")
    if stats.best_rated:
        lines += [
            f"{i}. {movie_name(m)} — mean {mean:.1f} from {n} ratings"
            for i, (m, n, mean) in enumerate(stats.best_rated, 1)
        ]
    else:
        lines.append(f"No movie has {minimum} ratings here yet.")
    return lines


def plural_of(count: int, word: str) -> str:
    """Return ``1 vote`` or ``3 votes`` (no thousands separator)."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def night_title(view: NightView) -> str:
    """Return the heading of a movie night's message."""
    genre = f" ({view.night.genre})" if view.night.genre else ""
    if view.night.state == "lobby":
        return f"Movie night{genre}: who's in?"
    if view.night.state == "voting":
        return f"Movie night{genre}: vote for tonight's film"
    if view.winner is not None:
        return f"Movie night{genre}: tonight it's {view.winner.label}"
    return f"Movie night{genre}: cancelled"


def night_lines(view: NightView, name: Callable[[int], str]) -> list[str]:
    """Return a night's message lines; ``name`` shows a member (a mention, or "member 3")."""
    lines: list[str] = []
    members = ", ".join(name(m) for m in view.members)
    if view.night.state == "lobby":
        lines.append(f"In so far: {members}.")
        lines.append(
            f"The vote opens when {name(view.night.started_by or 0)} starts it, or by "
            f"<t:{view.night.closes_at}:t>."
            if view.night.started_by
            else f"The vote opens at <t:{view.night.closes_at}:t>."
        )
        return lines
    for choice in view.choices:
        details = [", ".join(choice.movie.genres)] if choice.movie.genres else []
        fit = (
            f"everyone's #{choice.best_rank}"
            if choice.best_rank == choice.worst_rank
            else f"someone's #{choice.best_rank}, nobody's worse than #{choice.worst_rank}"
        ) + (f" of {view.candidates:,}" if view.candidates else "")
        mark = "🏆 " if view.winner is not None and choice.movie == view.winner else ""
        lines.append(
            f"{mark}{choice.position}. {movie_name(choice.movie)}"
            + (f" — {' · '.join(details)}" if details else "")
            + f" — {fit} — {plural_of(choice.votes, 'vote')}"
        )
    lines.append("")
    lines.append(f"For: {members}.")
    if view.newcomers:
        who = ", ".join(name(m) for m in view.newcomers)
        lines.append(f"Counted as “anyone” (no ratings yet): {who}. /rate a few films!")
    if view.left_out:
        who = ", ".join(name(m) for m in view.left_out)
        lines.append(f"Picked for the 25 members with the most ratings; left out: {who}.")
    elif view.night.left_out:
        lines.append(
            f"Picked for the 25 members with the most ratings; "
            f"{plural_of(view.night.left_out, 'member')} left out."
        )
    if view.night.state == "voting":
        lines.append(
            "One vote each, and you can change it. The starter or an admin closes the vote; "
            f"it closes by itself <t:{view.night.closes_at}:R>."
        )
    elif view.winner is not None:
        lines.append("It's on this server's watched list now (/watched).")
    return lines


def watched_lines(page: WatchedPage, name: Callable[[int], str]) -> list[str]:
    """Return one page of the watched list."""
    if not page.items:
        return ["Nothing watched yet. Start a /movienight!"]
    lines = []
    for item in page.items:
        when = f"<t:{item.watched_at}:d>"
        who = (
            "added by hand"
            if item.by_hand
            else ("with " + ", ".join(name(m) for m in item.members) if item.members else "")
        )
        lines.append(f"{movie_name(item.movie)} — {when}" + (f" — {who}" if who else ""))
    return lines


def watched_changed(movie: Movie, *, added: bool) -> str:
    """Return the confirmation of a watched-list edit."""
    if added:
        return f"Added {movie_name(movie)} to the watched list: movie nights won't offer it."
    return f"Removed {movie_name(movie)} from the watched list."


FORMAT_NAMES = {
    "letterboxd": "Letterboxd",
    "letterboxd-diary": "Letterboxd diary",
    "imdb": "IMDb",
    "moviebot": "moviebot export",
}


def imported(
    result: ImportResult,
    unmatched_in: str = "the attached CSV",
    undo_hint: str = "/import undo takes it back.",
) -> str:
    """Return the report of a finished import; ``unmatched_in`` says where those rows are."""
    counts = result.counts
    parts = [
        f"{counts.added:,} imported",
        f"{counts.unchanged:,} unchanged",
        f"{counts.replaced:,} replaced",
    ]
    if counts.kept:
        parts.append(f"{counts.kept:,} kept as you rated them here")
    parts += [f"{result.unmatched:,} unmatched", f"{result.skipped_total:,} skipped"]
    name = FORMAT_NAMES.get(result.format, result.format)
    text = f"Imported your {name} ratings: {', '.join(parts)}."
    if result.skipped:
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in sorted(result.skipped.items()))
        text += f" Skipped: {reasons}."
    if result.unmatched:
        text += f" The rows I couldn't match to one film are in {unmatched_in}."
    return text + f" {undo_hint}"


def import_question(decision: ImportDecision) -> str:
    """Return the question asked before an import that disagrees with ratings made here."""
    films = plural_of(decision.conflicts, "film")
    return (
        f"Your file rates {films} differently from your ratings here. Keep the ratings you "
        "made here, or take the file's?"
    )


def undone(outcome: tuple[int, int]) -> str:
    """Return the confirmation of /import undo."""
    restored, left = outcome
    text = f"Took back your last import: {plural_of(restored, 'film')} as before the import."
    if left:
        text += f" {plural_of(left, 'film')} you rated again since kept your newer rating."
    return text


def quickrate_card(movie: Movie, answered: int) -> tuple[str, list[str]]:
    """Return the title and lines of a /quickrate card."""
    lines = [", ".join(movie.genres) or "—"]
    link_text = links(movie)
    if link_text:
        lines.append(link_text)
    lines.append("")
    lines.append(
        f"Question {answered + 1} of up to {QUICKRATE_ANSWERS}: your rating, "
        "“Haven't seen it”, or “Done”."
    )
    return movie.label, lines

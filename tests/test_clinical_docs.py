"""The clinical documentation and the code cite the sources the clinical spec names."""

from __future__ import annotations

from pathlib import Path

from bot.domain import scoring

CLINICAL_DOC = Path(__file__).resolve().parent.parent / "docs" / "clinical.md"


def _section(number: int) -> str:
    """The text of section `number` of docs/clinical.md, up to the next section."""
    text = CLINICAL_DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {number}. ")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


class TestBasdaiThresholdCitation:
    def test_code_cites_the_asas_consensus_not_the_index_paper(self) -> None:
        """BASDAI ≥ 4 is cited to Braun 2003 (spec §3), not to Garrett 1994."""
        doc = scoring.basdai_active.__doc__ or ""
        assert "Braun et al., Ann Rheum Dis 2003;62:817-24" in doc
        assert "Garrett et al., J Rheumatol 1994)" not in doc

    def test_docs_cite_the_asas_consensus_for_the_threshold(self) -> None:
        """docs/clinical.md §3 cites Braun 2003 on its BASDAI ≥ 4 line."""
        line = next(ln for ln in _section(3).splitlines() if "**BASDAI ≥ 4**" in ln)
        assert "Braun et al., Ann Rheum Dis 2003;62:817-24" in line


class TestClinicalDoc:
    def test_chinese_state_names_are_those_of_the_spec(self) -> None:
        """§3 gives the Chinese state names and rules out 缓解 (remission)."""
        section = _section(3)
        for name in ("疾病非活动", "低疾病活动", "高疾病活动", "极高疾病活动"):
            assert name in section
        assert 'never "remission"/缓解' in section

    def test_chinese_wording_is_the_spec_rendering(self) -> None:
        """§1 carries the Chinese items that end as questions and speak of waking (醒来)."""
        section = _section(1)
        assert "q5 过去一周，您早上醒来后晨僵的总体程度如何？" in section
        assert "q6 过去一周，您早上醒来后晨僵通常持续多长时间？" in section

    def test_reporting_rules_are_documented_with_their_source(self) -> None:
        """§6 documents the reporting rules, with Pavy 2005 for the BASDAI change."""
        section = _section(6)
        assert "Reporting rules" in section
        assert "Pavy et al., J Rheumatol 2005;32:80-5" in section
        assert "ASDAS-ESR counts" in section
        assert "1 to 14 days" in section
